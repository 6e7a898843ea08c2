#pragma once
// Text helpers shared by the PostgreSQL-backed queues (jobs and webhook inbox).
// Identifiers are quoted only by pg::sql::ident (src/pg/sql.hpp), which refuses
// what PostgreSQL would truncate or misread (NUL, > 63 bytes, invalid UTF-8).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "webhookdb/time.hpp"

namespace webhookdb::pg::detail {

// NOTIFY channels are identifiers: `base`, then [a-z0-9_] of a non-public
// schema, 63 bytes at most.
inline std::string notify_channel(std::string_view base, const std::string& schema) {
  std::string channel(base);
  if (schema != "public") {
    channel += "__";
    for (char c : schema) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
      channel += ok ? c : ((c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : '_');
    }
  }
  if (channel.size() > 63) channel.resize(63);
  return channel;
}

// Cut at a UTF-8 boundary and without NULs (libpq would cut at the NUL anyway).
inline std::string clean_error(std::string text, std::size_t max_bytes) {
  text.erase(std::remove(text.begin(), text.end(), '\0'), text.end());
  if (text.size() > max_bytes) {
    std::size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0U) == 0x80U) --cut;
    text.resize(cut);
    text += "...";
  }
  return text;
}

// Timestamps are read as microseconds since the epoch: no text format involved.
inline std::string micros(const std::string& column) {
  return "(extract(epoch from " + column + ") * 1000000)::bigint";
}

inline std::int64_t to_i64(const std::optional<std::string>& v) { return v ? std::stoll(*v) : 0; }
inline int to_int(const std::optional<std::string>& v) { return v ? std::stoi(*v) : 0; }
inline std::optional<Timestamp> to_opt_ts(const std::optional<std::string>& v) {
  if (!v) return std::nullopt;
  return Timestamp(std::chrono::microseconds(std::stoll(*v)));
}

// 128 random bits in hex: unique per take, across processes and restarts.
inline std::string new_lease_token() {
  thread_local std::mt19937_64 rng = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }();
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

}  // namespace webhookdb::pg::detail
