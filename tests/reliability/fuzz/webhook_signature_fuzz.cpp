// Webhook signature header parsing (the Stripe-style "t=...,v1=..." parser,
// the HMAC verifiers, Slack's and HubSpot v3's, whose URI decoding reads the
// fuzzed text as a path too) and the codecs they use: no crash or UB on any header or
// body, no fuzzed header is ever accepted (it cannot know the secret), a
// header made with the secret always is, failure reasons never hold the secret
// or the expected signature, and hex/base64 round trip.
//
// Input: "<header>\n<body>"; the first byte also picks extra checks.

#include <cctype>
#include <cstdint>
#include <string>

#include "reliability/fuzz/fuzz_support.hpp"
#include "webhookdb/clock.hpp"
#include "webhookdb/codec.hpp"
#include "webhookdb/webhooks/hmac.hpp"
#include "webhookdb/webhooks/replay_guard.hpp"
#include "webhookdb/webhooks/verification.hpp"

namespace {

namespace wh = webhookdb::webhooks;
namespace codec = webhookdb::codec;
using webhookdb::test::printable;

constexpr std::string_view kSecret = "whsec_fuzz_SECRET_value";
constexpr std::int64_t kNow = 1'700'000'000;

class FixedClock final : public webhookdb::Clock {
 public:
  [[nodiscard]] webhookdb::Timestamp now() const override { return webhookdb::Timestamp{std::chrono::seconds(kNow)}; }
};

void check_failure(const wh::Verification& v, const std::string& expected_hex, std::string_view what) {
  FUZZ_CHECK(!v.valid, std::string(what) + " accepted a header made without the secret");
  FUZZ_CHECK(!v.reason.empty(), std::string(what) + ": failure without a reason");
  FUZZ_CHECK(v.reason.find(kSecret) == std::string::npos, std::string(what) + ": the secret is in the reason");
  FUZZ_CHECK(v.reason.find(expected_hex) == std::string::npos, std::string(what) + ": the expected signature is in the reason");
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto [header_view, body_view] = webhookdb::test::split_line(webhookdb::test::as_text(data, size));
  const std::string header(header_view);
  const std::string body(body_view);
  const FixedClock clock;

  webhookdb::WebhookRequest request;
  request.body = body;
  request.headers = {{"Stripe-Signature", header}, {"X-Hub-Signature-256", header}, {"X-Shopify-Hmac-Sha256", header}};
  const std::string expected_hex = wh::hmac_sha256_hex(kSecret, std::to_string(kNow) + "." + body);

  // A fuzzed header: never valid.
  check_failure(wh::verify_stripe_signature(request, kSecret, clock), expected_hex, "stripe");
  check_failure(wh::verify_hmac_sha256_hex(request, kSecret, "X-Hub-Signature-256", "sha256="),
                wh::hmac_sha256_hex(kSecret, body), "hex");
  check_failure(wh::verify_shopify_hmac(request, kSecret), wh::hmac_sha256_hex(kSecret, body), "base64");

  // Slack and HubSpot v3: the fuzzed text as the signature (and as the path HubSpot signs).
  const std::string slack_ts = std::to_string(kNow);
  const std::string hubspot_ts = std::to_string(kNow * 1000);
  const wh::HubSpotSignatureOptions hubspot{.public_base_url = "https://hooks.test"};
  webhookdb::WebhookRequest fuzzed_schemes;
  fuzzed_schemes.body = body;
  fuzzed_schemes.path = "/h?" + header;
  fuzzed_schemes.headers = {{"X-Slack-Signature", header},
                            {"X-Slack-Request-Timestamp", slack_ts},
                            {"X-HubSpot-Signature-v3", header},
                            {"X-HubSpot-Request-Timestamp", hubspot_ts}};
  const std::string slack_good = wh::slack_signature(kSecret, fuzzed_schemes);
  const std::string hubspot_good = wh::hubspot_signature_v3(kSecret, fuzzed_schemes, hubspot);
  check_failure(wh::verify_slack_signature(fuzzed_schemes, kSecret, clock), slack_good.substr(3), "slack");
  check_failure(wh::verify_hubspot_signature_v3(fuzzed_schemes, kSecret, clock, hubspot), hubspot_good,
                "hubspot");
  fuzzed_schemes.headers = {{"X-Slack-Signature", slack_good},
                            {"X-Slack-Request-Timestamp", slack_ts},
                            {"X-HubSpot-Signature-v3", hubspot_good},
                            {"X-HubSpot-Request-Timestamp", hubspot_ts}};
  FUZZ_CHECK(wh::verify_slack_signature(fuzzed_schemes, kSecret, clock).valid,
             "a correct Slack signature was refused");
  FUZZ_CHECK(wh::verify_hubspot_signature_v3(fuzzed_schemes, kSecret, clock, hubspot).valid,
             "a correct HubSpot signature was refused for path " + printable(fuzzed_schemes.path));

  // Made with the secret: always valid, also with the fuzzed text as extra elements.
  webhookdb::WebhookRequest signed_request;
  signed_request.body = body;
  const std::string good = wh::stripe_signature_header(kSecret, kNow, body);
  signed_request.headers = {{"Stripe-Signature", good}};
  FUZZ_CHECK(wh::verify_stripe_signature(signed_request, kSecret, clock).valid, "a correct header was refused");
  if (header.find("t=") == std::string::npos && header.find(',') == std::string::npos &&
      header.find('=') != std::string::npos) {
    // One more element of another scheme (v0=..., x=...) changes nothing.
    signed_request.headers = {{"Stripe-Signature", good + "," + header}};
    const auto v = wh::verify_stripe_signature(signed_request, kSecret, clock);
    FUZZ_CHECK(v.valid, "an extra element '" + printable(header) + "' broke a correct header: " + v.reason);
  }
  // The same signed request twice through a replay guard: the second is refused.
  wh::ReplayGuard guard(16);
  wh::SignedHeaderOptions options;
  options.replay_guard = &guard;
  signed_request.headers = {{"Stripe-Signature", good}};
  FUZZ_CHECK(wh::verify_stripe_signature(signed_request, kSecret, clock, options).valid, "first delivery refused");
  FUZZ_CHECK(!wh::verify_stripe_signature(signed_request, kSecret, clock, options).valid, "replay accepted");

  // Codecs.
  FUZZ_CHECK(codec::hex_decode(codec::hex_encode(body)) == body, "hex round trip");
  FUZZ_CHECK(codec::try_base64_decode(codec::base64_encode(body)) == body, "base64 round trip");
  if (auto bytes = codec::hex_decode(header)) FUZZ_CHECK(codec::hex_encode(*bytes) == lower(header), "from_hex accepted non-hex");
  if (auto bytes = codec::try_base64_decode(header)) {
    FUZZ_CHECK(codec::try_base64_decode(codec::base64_encode(*bytes)) == bytes, "base64 of decoded bytes: " + printable(header));
  }
  FUZZ_CHECK(wh::constant_time_equals(header, body) == (header == body), "constant_time_equals disagrees with ==");
  return 0;
}
