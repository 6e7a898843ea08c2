#pragma once
// Text helpers shared by the PostgreSQL-backed queues (jobs and webhook inbox).

#include <algorithm>
#include <string>
#include <string_view>

namespace webhookdb::jobs::detail {

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

inline std::string quote_ident(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace webhookdb::jobs::detail
