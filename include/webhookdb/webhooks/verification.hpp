#pragma once
// Signature checks for the common webhook schemes. Each returns a
// Verification that converts to a WebhookResponse, so a replicator writes
//
//   WebhookResponse verify_webhook(const WebhookRequest& r) override {
//     return webhooks::verify_stripe_signature(r, integration().webhook_secret, clock());
//   }
//
// A failure is a 401 whose message says what was wrong (missing header,
// malformed header, expired timestamp, mismatch) and never contains the
// secret or the expected signature. Signatures are compared as decoded bytes
// with constant_time_equals. An empty secret verifies nothing: it is a 401.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "webhookdb/clock.hpp"
#include "webhookdb/webhook.hpp"

namespace webhookdb::webhooks {

class ReplayGuard;

struct Verification {
  bool valid = false;
  // Why verification failed; empty when valid. Safe to log and to send back.
  std::string reason;

  [[nodiscard]] static Verification ok() { return {true, {}}; }
  [[nodiscard]] static Verification fail(std::string why) { return {false, std::move(why)}; }

  // 202 "ok" when valid, else 401 with the reason.
  [[nodiscard]] WebhookResponse response() const {
    return valid ? WebhookResponse::ok(202) : WebhookResponse::error(401, reason);
  }
  // Implicit on purpose: `return verify_...(...);` in verify_webhook.
  // NOLINTNEXTLINE(google-explicit-constructor)
  operator WebhookResponse() const { return response(); }
  explicit operator bool() const noexcept { return valid; }
};

// HMAC-SHA256 of the raw body, hex-encoded in `header` after an optional
// `prefix` (GitHub: header "X-Hub-Signature-256", prefix "sha256=").
// Hex case does not matter.
[[nodiscard]] Verification verify_hmac_sha256_hex(const WebhookRequest& request, std::string_view secret,
                                                  std::string_view header, std::string_view prefix = {});

// HMAC-SHA256 of the raw body, base64-encoded in `header` after an optional `prefix`.
[[nodiscard]] Verification verify_hmac_sha256_base64(const WebhookRequest& request, std::string_view secret,
                                                     std::string_view header, std::string_view prefix = {});

// Shopify: base64 HMAC-SHA256 of the raw body in X-Shopify-Hmac-Sha256.
[[nodiscard]] Verification verify_shopify_hmac(const WebhookRequest& request, std::string_view secret,
                                               std::string_view header = "X-Shopify-Hmac-Sha256");

struct SignedHeaderOptions {
  std::string header = "Stripe-Signature";
  // The signature element to check; several may be present, one match is enough.
  std::string scheme = "v1";
  // A timestamp further than this from the clock's now (either way) is
  // rejected, so a captured request cannot be replayed later.
  std::chrono::seconds tolerance{300};
  // Optional: also rejects a second delivery of the same signature inside the
  // tolerance window. Not owned; must outlive the calls.
  ReplayGuard* replay_guard = nullptr;
};

// Stripe-style signed header: "t=<unix seconds>,v1=<hex>[,v1=<hex>...]" (other
// elements such as v0 are ignored), where each v1 is the hex HMAC-SHA256 of
// "<t>.<raw body>". The signature is checked first, then the timestamp.
[[nodiscard]] Verification verify_stripe_signature(const WebhookRequest& request, std::string_view secret,
                                                   const Clock& clock, const SignedHeaderOptions& options = {});

// The header value a Stripe-style sender would send; for tests and senders.
[[nodiscard]] std::string stripe_signature_header(std::string_view secret, std::int64_t unix_seconds,
                                                  std::string_view body, std::string_view scheme = "v1");

}  // namespace webhookdb::webhooks
