#include "webhookdb/webhooks/verification.hpp"

#include <charconv>
#include <chrono>
#include <optional>
#include <vector>

#include "webhookdb/codec.hpp"
#include "webhookdb/http_client.hpp"
#include "webhookdb/url.hpp"
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

// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): secret, then where the signature is and its prefix
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

// A non-negative decimal of at most `max_digits` digits: 12 for seconds and
// 15 for milliseconds reach past the year 30000 and stay far from overflowing
// Timestamp's microseconds.
std::optional<std::int64_t> parse_unix_time(std::string_view text, std::size_t max_digits) {
  if (text.empty() || text.size() > max_digits) return std::nullopt;
  std::int64_t value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end || value < 0) return std::nullopt;
  return value;
}

// A request whose signature matched, for the checks that follow.
struct MatchedSignature {
  Timestamp signed_at;
  std::string_view timestamp_text;  // as sent
  std::string_view timestamp_header;
  std::string_view signature_header;
  std::string_view signature;  // decoded
};

// The checks after a signature matched: signed_at within `tolerance` of now
// (either way), then the replay guard, which remembers the signature until
// the timestamp expires.
Verification fresh_and_first_use(const MatchedSignature& matched, const Clock& clock,
                                 std::chrono::seconds tolerance, ReplayGuard* replay_guard) {
  const Timestamp now = clock.now();
  const auto skew = now > matched.signed_at ? now - matched.signed_at : matched.signed_at - now;
  if (skew > tolerance) {
    return Verification::fail("webhook timestamp in " + std::string(matched.timestamp_header) +
                              " header is outside the tolerance (expired or replayed)");
  }
  if (replay_guard != nullptr && !replay_guard->first_use(std::string(matched.timestamp_text) + "." +
                                                              codec::hex_encode(matched.signature),
                                                          matched.signed_at + tolerance, now)) {
    return Verification::fail("webhook signature in " + std::string(matched.signature_header) +
                              " header was already used (replay)");
  }
  return Verification::ok();
}

// What Slack signs: "v0:" + the timestamp as sent + ":" + the raw body.
std::string slack_payload(const WebhookRequest& request, std::string_view timestamp) {
  std::string payload = "v0:";
  payload += timestamp;
  payload += ':';
  payload += request.body;
  return payload;
}

// HubSpot decodes these escapes in the URI before signing it (and no others):
// `hex` is the two digits after a '%'.
std::optional<char> hubspot_decoded(std::string_view hex) {
  static constexpr std::string_view kDecoded = ":/?@!$'()*,;";
  const auto bytes = codec::hex_decode(hex);
  if (!bytes || bytes->size() != 1) return std::nullopt;
  const char c = (*bytes)[0];
  return kDecoded.find(c) != std::string_view::npos ? std::optional<char>(c) : std::nullopt;
}

// What HubSpot v3 signs: method + the full URI (signed form) + raw body +
// the timestamp as sent.
std::string hubspot_payload(const WebhookRequest& request, const HubSpotSignatureOptions& options,
                            std::string_view timestamp) {
  std::string_view base = options.public_base_url;
  if (base.ends_with('/') && request.path.starts_with('/')) base.remove_suffix(1);
  std::string payload = request.method;
  payload += hubspot_signed_uri(std::string(base) + request.path);
  payload += request.body;
  payload += timestamp;
  return payload;
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
      timestamp = parse_unix_time(val, 12);
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
  const std::string normalised_timestamp = std::to_string(*timestamp);  // the replay key's, as before
  return fresh_and_first_use({.signed_at = Timestamp{std::chrono::seconds(*timestamp)},
                              .timestamp_text = normalised_timestamp,
                              .timestamp_header = header,
                              .signature_header = header,
                              .signature = *matched},
                             clock, options.tolerance, options.replay_guard);
}

// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): secret, time, body: the order Stripe signs them
std::string stripe_signature_header(std::string_view secret, std::int64_t unix_seconds, std::string_view body,
                                    std::string_view scheme) {
  std::string payload = std::to_string(unix_seconds);
  payload += '.';
  payload += body;
  return "t=" + std::to_string(unix_seconds) + "," + std::string(scheme) + "=" +
         hmac_sha256_hex(secret, payload);
}

// --- Slack ---

Verification verify_slack_signature(const WebhookRequest& request, std::string_view signing_secret,
                                    const Clock& clock, const SlackSignatureOptions& options) {
  const std::string_view header = options.signature_header;
  const auto signature = header_value(request, header);
  if (!signature) return missing_header(header);
  const auto timestamp = header_value(request, options.timestamp_header);
  if (!timestamp) return missing_header(options.timestamp_header);
  if (signing_secret.empty()) return no_secret();
  const auto seconds = parse_unix_time(*timestamp, 12);
  if (!seconds) return malformed_header(options.timestamp_header, "not a unix time in seconds");

  std::string_view text = *signature;
  if (!text.starts_with("v0=")) return malformed_header(header, "expected prefix 'v0='");
  text.remove_prefix(3);
  const auto provided = codec::hex_decode(text);
  if (!provided || provided->size() != kSha256Bytes)
    return malformed_header(header, "expected 64 hex digits");

  if (!constant_time_equals(*provided,
                            hmac_sha256(signing_secret, slack_payload(request, *timestamp)))) {
    return mismatch(header);
  }
  return fresh_and_first_use({.signed_at = Timestamp{std::chrono::seconds(*seconds)},
                              .timestamp_text = *timestamp,
                              .timestamp_header = options.timestamp_header,
                              .signature_header = header,
                              .signature = *provided},
                             clock, options.tolerance, options.replay_guard);
}

std::string slack_signature(std::string_view signing_secret, const WebhookRequest& request,
                            const SlackSignatureOptions& options) {
  const std::string timestamp = header_value(request, options.timestamp_header).value_or("");
  return "v0=" + hmac_sha256_hex(signing_secret, slack_payload(request, timestamp));
}

// --- HubSpot v3 ---

std::string hubspot_signed_uri(std::string_view uri) {
  std::string out;
  out.reserve(uri.size());
  for (std::size_t i = 0; i < uri.size(); ++i) {
    if (uri[i] == '%' && i + 2 < uri.size()) {
      if (const auto c = hubspot_decoded(uri.substr(i + 1, 2))) {
        out += *c;
        i += 2;
        continue;
      }
    }
    out += uri[i];
  }
  return out;
}

std::string hubspot_signature_v3(std::string_view client_secret, const WebhookRequest& request,
                                 const HubSpotSignatureOptions& options) {
  const std::string timestamp = header_value(request, options.timestamp_header).value_or("");
  return hmac_sha256_base64(client_secret, hubspot_payload(request, options, timestamp));
}

Verification verify_hubspot_signature_v3(const WebhookRequest& request, std::string_view client_secret,
                                         const Clock& clock, const HubSpotSignatureOptions& options) {
  const std::string_view header = options.signature_header;
  const auto signature = header_value(request, header);
  if (!signature) return missing_header(header);
  const auto timestamp = header_value(request, options.timestamp_header);
  if (!timestamp) return missing_header(options.timestamp_header);
  if (client_secret.empty()) return no_secret();
  if (!url::is_http_url(options.public_base_url)) {
    return Verification::fail("HubSpot public_base_url not configured; cannot verify the signed URI");
  }
  const auto millis = parse_unix_time(*timestamp, 15);
  if (!millis) return malformed_header(options.timestamp_header, "not a unix time in milliseconds");
  const auto provided = codec::try_base64_decode(*signature);
  if (!provided || provided->size() != kSha256Bytes)
    return malformed_header(header, "expected base64 of 32 bytes");

  const std::string expected = hmac_sha256(client_secret, hubspot_payload(request, options, *timestamp));
  if (!constant_time_equals(*provided, expected)) return mismatch(header);
  return fresh_and_first_use({.signed_at = Timestamp{std::chrono::milliseconds(*millis)},
                              .timestamp_text = *timestamp,
                              .timestamp_header = options.timestamp_header,
                              .signature_header = header,
                              .signature = *provided},
                             clock, options.tolerance, options.replay_guard);
}

}  // namespace webhookdb::webhooks
