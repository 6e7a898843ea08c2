#pragma once
// WEBHOOKDB_EXPORT marks what a shared webhookdb library exports. Every
// component is built with -fvisibility=hidden -fvisibility-inlines-hidden
// when BUILD_SHARED_LIBS=ON (cmake/WebhookdbTargets.cmake), so only the
// classes, functions and variables of the public headers carrying it are
// visible to a consumer:
//   class WEBHOOKDB_EXPORT MemoryJobStore final : public JobStore { ... };
//   WEBHOOKDB_EXPORT std::string_view to_string(QueuedJobState state) noexcept;
// On ELF the same attribute serves the library and its consumers (no
// import/export split as on Windows, which this project does not build for).
// Static builds are unaffected: the attribute only restates the default there.
// What it goes on: a class with a vtable (its typeinfo is what a consumer's
// `catch (const webhookdb::HttpError&)` or dynamic_cast compares: every
// exception class) or with members defined in a .cpp; a free function or an
// extern variable defined in a .cpp. Templates, inline functions and plain
// aggregates need nothing.

#if defined(__GNUC__) || defined(__clang__)
#define WEBHOOKDB_EXPORT __attribute__((visibility("default")))
#define WEBHOOKDB_NO_EXPORT __attribute__((visibility("hidden")))
#else
#define WEBHOOKDB_EXPORT
#define WEBHOOKDB_NO_EXPORT
#endif

// WEBHOOKDB_INTERNAL_EXPORT marks a declaration of a header under src/ (not
// installed, no API, may change any day) that a shared library exports only
// because the project's own tests and tools call it, e.g. the pg adapter's
// SQL quoting helpers. Keep the list short: each one is surface a consumer
// could link to by mistake.
#define WEBHOOKDB_INTERNAL_EXPORT WEBHOOKDB_EXPORT
