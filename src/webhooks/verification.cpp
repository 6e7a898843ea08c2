#include "webhookdb/webhooks/verification.hpp"

#include <charconv>
#include <optional>
#include <vector>

#include "webhookdb/codec.hpp"
#include "webhookdb/http_client.hpp"
#include "webhookdb/webhooks/hmac.hpp"
#include "webhookdb/webhooks/replay_guard.hpp"

namespace webhookdb::webhooks {
namespace {

constexpr std::size_t kSha256Bytes = 32;

using codec::trim;

// The header's value, or a failure naming the header (never its value).
std::optional<std::string> header_value(const WebhookRequest& request, std::string_view header) {
  auto value = find_header(request.headers, header);
  if (!value) return std::nullopt;
  return std::string(trim(*value));
}

Verification missing_header(std::string_view header) {
  return Verification::fail("missing " + std::string(header) + " header");
}

Verification malformed_header(std::string_view header, std::string_view what) {
  return Verification::fail("malformed " + std::string(header) + " header: " + std::string(what));
}

Verification mismatch(std::string_view header) {
  return Verification::fail("invalid webhook signature in " + std::string(header) + " header");
}

Verification no_secret() {
  return Verification::fail("webhook secret not configured; cannot verify signature");
}

enum class Encoding { hex, base64 };

Verification verify_body_hmac(const WebhookRequest& request, std::string_view secret, std::string_view header,
                              std::string_view prefix, Encoding encoding) {
  auto value = header_value(request, header);
  if (!value) return missing_header(header);
  if (secret.empty()) return no_secret();
  std::string_view sig = *value;
  if (!prefix.empty()) {
    if (sig.substr(0, prefix.size()) != prefix) {
      return malformed_header(header, "expected prefix '" + std::string(prefix) + "'");
    }
    sig.remove_prefix(prefix.size());
  }
  const auto provided = encoding == Encoding::hex ? codec::hex_decode(sig) : codec::try_base64_decode(sig);
  if (!provided || provided->size() != kSha256Bytes) {
    return malformed_header(
        header, encoding == Encoding::hex ? "expected 64 hex digits" : "expected base64 of 32 bytes");
  }
  const std::string expected = hmac_sha256(secret, request.body);
  if (!constant_time_equals(*provided, expected)) return mismatch(header);
  return Verification::ok();
}

std::optional<std::int64_t> parse_unix_seconds(std::string_view text) {
  if (text.empty() || text.size() > 12) return std::nullopt;
  std::int64_t value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end || value < 0) return std::nullopt;
  return value;
}

}  // namespace

Verification verify_hmac_sha256_hex(const WebhookRequest& request, std::string_view secret,
                                    std::string_view header, std::string_view prefix) {
  return verify_body_hmac(request, secret, header, prefix, Encoding::hex);
}

Verification verify_hmac_sha256_base64(const WebhookRequest& request, std::string_view secret,
                                       std::string_view header, std::string_view prefix) {
  return verify_body_hmac(request, secret, header, prefix, Encoding::base64);
}

Verification verify_shopify_hmac(const WebhookRequest& request, std::string_view secret,
                                 std::string_view header) {
  return verify_body_hmac(request, secret, header, {}, Encoding::base64);
}

Verification verify_stripe_signature(const WebhookRequest& request, std::string_view secret,
                                     const Clock& clock, const SignedHeaderOptions& options) {
  const std::string_view header = options.header;
  auto value = header_value(request, header);
  if (!value) return missing_header(header);
  if (secret.empty()) return no_secret();

  std::optional<std::int64_t> timestamp;
  std::string_view timestamp_text;      // signed as sent (leading zeros included)
  std::vector<std::string> signatures;  // decoded, 32 bytes each
  std::string_view rest = *value;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string_view element = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (element.empty()) continue;
    const auto eq = element.find('=');
    if (eq == std::string_view::npos) return malformed_header(header, "expected key=value elements");
    const std::string_view key = element.substr(0, eq);
    const std::string_view val = element.substr(eq + 1);
    if (key == "t") {
      if (timestamp) return malformed_header(header, "more than one timestamp");
      timestamp = parse_unix_seconds(val);
      timestamp_text = val;
      if (!timestamp) return malformed_header(header, "timestamp is not a unix time");
    } else if (key == options.scheme) {
      // A signature of another length or alphabet cannot match; skip it.
      if (auto decoded = codec::hex_decode(val); decoded && decoded->size() == kSha256Bytes) {
        signatures.push_back(std::move(*decoded));
      }
    }
  }
  if (!timestamp) return malformed_header(header, "no timestamp");
  if (signatures.empty()) return malformed_header(header, "no " + options.scheme + " signature");

  std::string signed_payload(timestamp_text);
  signed_payload += '.';
  signed_payload += request.body;
  const std::string expected = hmac_sha256(secret, signed_payload);
  const std::string* matched = nullptr;
  // Compare against every candidate (no early exit) so timing does not tell which matched.
  for (const auto& candidate : signatures) {
    if (constant_time_equals(candidate, expected)) matched = &candidate;
  }
  if (matched == nullptr) return mismatch(header);

  const Timestamp signed_at{std::chrono::seconds(*timestamp)};
  const Timestamp now = clock.now();
  const auto skew = now > signed_at ? now - signed_at : signed_at - now;
  if (skew > options.tolerance) {
    return Verification::fail("webhook timestamp in " + std::string(header) +
                              " header is outside the tolerance (expired or replayed)");
  }
  if (options.replay_guard != nullptr &&
      !options.replay_guard->first_use(std::to_string(*timestamp) + "." + codec::hex_encode(*matched),
                                       signed_at + options.tolerance, now)) {
    return Verification::fail("webhook signature in " + std::string(header) +
                              " header was already used (replay)");
  }
  return Verification::ok();
}

std::string stripe_signature_header(std::string_view secret, std::int64_t unix_seconds, std::string_view body,
                                    std::string_view scheme) {
  std::string payload = std::to_string(unix_seconds);
  payload += '.';
  payload += body;
  return "t=" + std::to_string(unix_seconds) + "," + std::string(scheme) + "=" +
         hmac_sha256_hex(secret, payload);
}

}  // namespace webhookdb::webhooks
