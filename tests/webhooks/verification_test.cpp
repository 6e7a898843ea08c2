// Signature schemes: HMAC hex/base64, Shopify, Stripe-style signed headers,
// Slack and HubSpot v3 (a timestamp, and HubSpot's method and URI, signed with
// the body), the replay guard, and the constant-time comparison they all go
// through.

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <string>

#include "webhook_test_support.hpp"
#include "webhookdb/codec.hpp"
#include "webhookdb/webhooks/hmac.hpp"
#include "webhookdb/webhooks/replay_guard.hpp"
#include "webhookdb/webhooks/verification.hpp"

namespace webhookdb::webhooks {
namespace {

using test::FixedClock;

constexpr const char* kSecret = "whsec_test";
const std::string kBody = R"({"id":"ch_1"})";

WebhookRequest request_with(const std::string& body, Headers headers) {
  WebhookRequest r;
  r.body = body;
  r.headers = std::move(headers);
  return r;
}

// Every failure message must be free of the secret and of the expected signature.
void expect_safe_401(const Verification& v, const std::string& secret, const std::vector<std::string>& expected) {
  EXPECT_FALSE(v.valid);
  const WebhookResponse r = v;
  EXPECT_EQ(r.status, 401);
  EXPECT_FALSE(r.body.empty());
  EXPECT_EQ(r.body.find(secret), std::string::npos) << r.body;
  for (const auto& e : expected) EXPECT_EQ(r.body.find(e), std::string::npos) << r.body;
}

TEST(Hmac, MatchesRfc4231TestCase2) {
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(hmac_sha256("Jefe", "what do ya want for nothing?").size(), 32U);
}

TEST(Hmac, Base64MatchesAnIndependentComputation) {
  // python3: base64.b64encode(hmac.new(b'shpss_secret', b'{"id":1}', sha256).digest())
  EXPECT_EQ(hmac_sha256_base64("shpss_secret", R"({"id":1})"), "xocA3LkeJ/RvNrkxep1EUtFHuj7rIoIqZYaLU26LyPQ=");
}

TEST(Hmac, EmptyKeyAndMessageWork) {
  // python3: hmac.new(b'', b'', sha256).hexdigest()
  EXPECT_EQ(hmac_sha256_hex("", ""), "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(Codecs, HexRoundTripsAndRejectsGarbage) {
  const std::string bytes("\x00\x01\xfe\xff", 4);
  EXPECT_EQ(codec::hex_encode(bytes), "0001feff");
  EXPECT_EQ(codec::hex_decode("0001FEff"), bytes);
  EXPECT_FALSE(codec::hex_decode("abc"));
  EXPECT_FALSE(codec::hex_decode("zz"));
  EXPECT_EQ(codec::hex_decode(""), std::string());
}

TEST(Codecs, Base64RoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(codec::try_base64_decode(codec::base64_encode(bytes)), bytes) << i;
    bytes.push_back(static_cast<char>(i * 37));
  }
  EXPECT_EQ(codec::base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(codec::base64_encode("fo"), "Zm8=");
  EXPECT_EQ(codec::try_base64_decode("Zm8"), "fo");  // padding optional
  EXPECT_FALSE(codec::try_base64_decode("Zm8*"));
  EXPECT_FALSE(codec::try_base64_decode("Zm9=="));   // bad padding
  EXPECT_FALSE(codec::try_base64_decode("Z"));
  EXPECT_FALSE(codec::try_base64_decode("Zm9v YmFy"));
  EXPECT_FALSE(codec::try_base64_decode("Zm9"));  // non-zero leftover bits (not canonical)
}

TEST(ConstantTime, ComparesLengthAndEveryByte) {
  EXPECT_TRUE(constant_time_equals("", ""));
  EXPECT_TRUE(constant_time_equals("abc", "abc"));
  EXPECT_FALSE(constant_time_equals("abc", "abd"));
  EXPECT_FALSE(constant_time_equals("abc", "xbc"));
  EXPECT_FALSE(constant_time_equals("abc", "abcd"));
  EXPECT_FALSE(constant_time_equals(std::string("a\0b", 3), std::string("a\0c", 3)));
}

// The verifiers compare through constant_time_equals (CRYPTO_memcmp), never
// with ==: each verification that gets as far as comparing bumps its counter.
TEST(ConstantTime, EveryVerifierUsesIt) {
  FixedClock clock;
  const auto before = detail::constant_time_comparisons();
  auto r1 = request_with(kBody, {{"X-Sig", hmac_sha256_hex("k", kBody)}});
  EXPECT_TRUE(verify_hmac_sha256_hex(r1, "k", "X-Sig").valid);
  const auto after_hex = detail::constant_time_comparisons();
  EXPECT_GE(after_hex, before + 1);

  auto r2 = request_with(kBody, {{"X-Shopify-Hmac-Sha256", hmac_sha256_base64("k", kBody)}});
  EXPECT_TRUE(verify_shopify_hmac(r2, "k").valid);
  const auto after_shopify = detail::constant_time_comparisons();
  EXPECT_GE(after_shopify, after_hex + 1);

  // A mismatch is found by the same comparison, not by an early ==.
  auto r3 = request_with(kBody, {{"X-Sig", hmac_sha256_hex("other", kBody)}});
  EXPECT_FALSE(verify_hmac_sha256_hex(r3, "k", "X-Sig").valid);
  const auto after_mismatch = detail::constant_time_comparisons();
  EXPECT_GE(after_mismatch, after_shopify + 1);

  // Stripe: every candidate signature is compared (no early exit on a match).
  const std::string good = stripe_signature_header(kSecret, FixedClock::kStart, kBody);
  const std::string bad_sig(64, 'a');
  auto r4 = request_with(kBody, {{"Stripe-Signature", good + ",v1=" + bad_sig + ",v1=" + bad_sig}});
  EXPECT_TRUE(verify_stripe_signature(r4, kSecret, clock).valid);
  EXPECT_GE(detail::constant_time_comparisons(), after_mismatch + 3);
}

// ---- HMAC hex (GitHub style) ----

TEST(HmacHex, ValidWithPrefix) {
  const auto sig = "sha256=" + hmac_sha256_hex(kSecret, kBody);
  const auto v = verify_hmac_sha256_hex(request_with(kBody, {{"X-Hub-Signature-256", sig}}), kSecret,
                                        "X-Hub-Signature-256", "sha256=");
  EXPECT_TRUE(v.valid) << v.reason;
  EXPECT_EQ(WebhookResponse(v).status, 202);
}

TEST(HmacHex, UpperCaseHexAndCaseInsensitiveHeaderName) {
  std::string sig = hmac_sha256_hex(kSecret, kBody);
  for (auto& c : sig) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(verify_hmac_sha256_hex(request_with(kBody, {{"x-signature", sig}}), kSecret, "X-Signature").valid);
}

TEST(HmacHex, WrongSecret) {
  const auto expected = hmac_sha256_hex(kSecret, kBody);
  const auto v = verify_hmac_sha256_hex(request_with(kBody, {{"X-Sig", hmac_sha256_hex("nope", kBody)}}), kSecret,
                                        "X-Sig");
  expect_safe_401(v, kSecret, {expected});
  EXPECT_NE(v.reason.find("invalid webhook signature"), std::string::npos) << v.reason;
}

TEST(HmacHex, TamperedBody) {
  const auto sig = hmac_sha256_hex(kSecret, kBody);
  const auto v = verify_hmac_sha256_hex(request_with(R"({"id":"ch_2"})", {{"X-Sig", sig}}), kSecret, "X-Sig");
  expect_safe_401(v, kSecret, {hmac_sha256_hex(kSecret, R"({"id":"ch_2"})")});
}

TEST(HmacHex, MissingHeader) {
  const auto v = verify_hmac_sha256_hex(request_with(kBody, {}), kSecret, "X-Sig");
  expect_safe_401(v, kSecret, {hmac_sha256_hex(kSecret, kBody)});
  EXPECT_EQ(v.reason, "missing X-Sig header");
}

TEST(HmacHex, MalformedHeader) {
  const std::string hex64(64, 'a');
  for (const std::string& bad : std::vector<std::string>{"sha256=zz", "sha256=abc", "sha256=" + hex64.substr(2), "sha256=" + hex64 + "aa",
                                "sha256=" + hex64.substr(1) + "g", "sha1=" + hex64, hex64}) {
    const auto v = verify_hmac_sha256_hex(request_with(kBody, {{"X-Sig", bad}}), kSecret, "X-Sig", "sha256=");
    expect_safe_401(v, kSecret, {hmac_sha256_hex(kSecret, kBody)});
    EXPECT_NE(v.reason.find("malformed X-Sig header"), std::string::npos) << v.reason;
  }
}

TEST(HmacHex, EmptySecretVerifiesNothing) {
  const auto sig = hmac_sha256_hex("", kBody);
  const auto v = verify_hmac_sha256_hex(request_with(kBody, {{"X-Sig", sig}}), "", "X-Sig");
  EXPECT_FALSE(v.valid);
  EXPECT_EQ(WebhookResponse(v).status, 401);
}

// ---- HMAC base64 / Shopify ----

TEST(Shopify, Valid) {
  const auto v = verify_shopify_hmac(
      request_with(kBody, {{"X-Shopify-Hmac-Sha256", hmac_sha256_base64(kSecret, kBody)}}), kSecret);
  EXPECT_TRUE(v.valid) << v.reason;
}

TEST(Shopify, WrongSecret) {
  const auto v = verify_shopify_hmac(
      request_with(kBody, {{"X-Shopify-Hmac-Sha256", hmac_sha256_base64("other", kBody)}}), kSecret);
  expect_safe_401(v, kSecret, {hmac_sha256_base64(kSecret, kBody)});
}

TEST(Shopify, TamperedBody) {
  const auto v = verify_shopify_hmac(
      request_with(kBody + " ", {{"X-Shopify-Hmac-Sha256", hmac_sha256_base64(kSecret, kBody)}}), kSecret);
  expect_safe_401(v, kSecret, {hmac_sha256_base64(kSecret, kBody + " ")});
}

TEST(Shopify, MissingHeader) {
  const auto v = verify_shopify_hmac(request_with(kBody, {{"X-Other", "x"}}), kSecret);
  expect_safe_401(v, kSecret, {hmac_sha256_base64(kSecret, kBody)});
  EXPECT_EQ(v.reason, "missing X-Shopify-Hmac-Sha256 header");
}

TEST(Shopify, MalformedHeader) {
  for (const std::string& bad : std::vector<std::string>{"not base64!", "", "Zm9vYmFy", hmac_sha256_hex(kSecret, kBody)}) {
    const auto v = verify_shopify_hmac(request_with(kBody, {{"X-Shopify-Hmac-Sha256", bad}}), kSecret);
    expect_safe_401(v, kSecret, {hmac_sha256_base64(kSecret, kBody)});
    EXPECT_NE(v.reason.find("malformed"), std::string::npos) << v.reason;
  }
}

TEST(HmacBase64, ValidWithPrefixAndCustomHeader) {
  const auto v = verify_hmac_sha256_base64(
      request_with(kBody, {{"X-Sig", "sha256=" + hmac_sha256_base64(kSecret, kBody)}}), kSecret, "X-Sig", "sha256=");
  EXPECT_TRUE(v.valid) << v.reason;
}

TEST(HmacBase64, RejectsWrongSecretTamperedBodyMissingAndMalformedHeaders) {
  const std::string good = "sha256=" + hmac_sha256_base64(kSecret, kBody);
  const auto check = [&](const WebhookRequest& r) {
    return verify_hmac_sha256_base64(r, kSecret, "X-Sig", "sha256=");
  };
  // Signed with another secret.
  expect_safe_401(check(request_with(kBody, {{"X-Sig", "sha256=" + hmac_sha256_base64("other", kBody)}})), kSecret,
                  {good});
  // Body changed after signing.
  expect_safe_401(check(request_with(R"({"id":"ch_2"})", {{"X-Sig", good}})), kSecret, {good});
  // No header at all, or under another name.
  expect_safe_401(check(request_with(kBody, {})), kSecret, {good});
  expect_safe_401(check(request_with(kBody, {{"X-Other", good}})), kSecret, {good});
  // Malformed: no prefix, not base64, empty, the hex form.
  for (const std::string& bad : std::vector<std::string>{hmac_sha256_base64(kSecret, kBody), "sha256=not base64!",
                                                         "sha256=", "", "sha256=" + hmac_sha256_hex(kSecret, kBody)}) {
    expect_safe_401(check(request_with(kBody, {{"X-Sig", bad}})), kSecret, {good});
  }
  EXPECT_TRUE(check(request_with(kBody, {{"x-sig", good}})).valid) << "header names are case-insensitive";
}

// ---- Stripe-style signed header ----

class StripeSignature : public ::testing::Test {
 protected:
  FixedClock clock;
  WebhookRequest signed_request(const std::string& body, std::int64_t t, const std::string& secret = kSecret) {
    return request_with(body, {{"Stripe-Signature", stripe_signature_header(secret, t, body)}});
  }
  std::string expected_hex(const std::string& body, std::int64_t t) {
    return hmac_sha256_hex(kSecret, std::to_string(t) + "." + body);
  }
};

TEST_F(StripeSignature, HeaderFormat) {
  EXPECT_EQ(stripe_signature_header(kSecret, 1'700'000'000, kBody),
            // python3: hmac.new(b'whsec_test', b'1700000000.{"id":"ch_1"}', sha256).hexdigest()
            "t=1700000000,v1=6cdc6450b7d3edaba8d3694fbbf99c8385c8dd793143ab043a40b1b9ad4ded66");
}

TEST_F(StripeSignature, Valid) {
  const auto v = verify_stripe_signature(signed_request(kBody, FixedClock::kStart), kSecret, clock);
  EXPECT_TRUE(v.valid) << v.reason;
  EXPECT_EQ(WebhookResponse(v).status, 202);
}

TEST_F(StripeSignature, ValidAmongSeveralSignaturesAndOtherSchemes) {
  const std::string t = std::to_string(FixedClock::kStart);
  const std::string header = "t=" + t + ", v0=" + std::string(64, 'b') + ",v1=" + std::string(64, 'c') +
                             " , v1=" + expected_hex(kBody, FixedClock::kStart);
  const auto v = verify_stripe_signature(request_with(kBody, {{"stripe-signature", header}}), kSecret, clock);
  EXPECT_TRUE(v.valid) << v.reason;
}

TEST_F(StripeSignature, TimestampIsCheckedAsSent) {
  const std::string t = "0" + std::to_string(FixedClock::kStart);
  const std::string header = "t=" + t + ",v1=" + hmac_sha256_hex(kSecret, t + "." + kBody);
  const auto v = verify_stripe_signature(request_with(kBody, {{"Stripe-Signature", header}}), kSecret, clock);
  EXPECT_TRUE(v.valid) << v.reason;
}

TEST_F(StripeSignature, WithinToleranceEitherWay) {
  EXPECT_TRUE(verify_stripe_signature(signed_request(kBody, FixedClock::kStart - 299), kSecret, clock).valid);
  EXPECT_TRUE(verify_stripe_signature(signed_request(kBody, FixedClock::kStart + 299), kSecret, clock).valid);
}

TEST_F(StripeSignature, WrongSecret) {
  const auto v = verify_stripe_signature(signed_request(kBody, FixedClock::kStart, "whsec_other"), kSecret, clock);
  expect_safe_401(v, kSecret, {expected_hex(kBody, FixedClock::kStart)});
  EXPECT_NE(v.reason.find("invalid webhook signature"), std::string::npos);
}

TEST_F(StripeSignature, TamperedBody) {
  auto r = signed_request(kBody, FixedClock::kStart);
  r.body = R"({"id":"ch_1","amount":1})";
  expect_safe_401(verify_stripe_signature(r, kSecret, clock), kSecret,
                  {expected_hex(r.body, FixedClock::kStart)});
}

TEST_F(StripeSignature, TamperedTimestampDoesNotVerify) {
  // Refreshing t on a captured request breaks the signature.
  const auto sig = expected_hex(kBody, FixedClock::kStart - 3600);
  const auto header = "t=" + std::to_string(FixedClock::kStart) + ",v1=" + sig;
  const auto v = verify_stripe_signature(request_with(kBody, {{"Stripe-Signature", header}}), kSecret, clock);
  expect_safe_401(v, kSecret, {expected_hex(kBody, FixedClock::kStart)});
  EXPECT_NE(v.reason.find("invalid webhook signature"), std::string::npos);
}

TEST_F(StripeSignature, MissingHeader) {
  const auto v = verify_stripe_signature(request_with(kBody, {}), kSecret, clock);
  expect_safe_401(v, kSecret, {});
  EXPECT_EQ(v.reason, "missing Stripe-Signature header");
}

TEST_F(StripeSignature, MalformedHeaders) {
  const std::string t = std::to_string(FixedClock::kStart);
  const std::string sig = expected_hex(kBody, FixedClock::kStart);
  for (const std::string& bad : std::vector<std::string>{
           std::string(""),                       // empty
           "garbage",                             // no key=value
           "v1=" + sig,                           // no timestamp
           "t=" + t,                              // no signature
           "t=abc,v1=" + sig,                     // timestamp not a number
           "t=-5,v1=" + sig,                      // negative
           "t=" + t + "1234567,v1=" + sig,        // absurdly long
           "t=" + t + ",t=" + t + ",v1=" + sig,   // two timestamps
           "t=" + t + ",v1=xyz",                  // signature not hex
           "t=" + t + ",v1=" + sig.substr(2),     // wrong length
       }) {
    const auto v = verify_stripe_signature(request_with(kBody, {{"Stripe-Signature", bad}}), kSecret, clock);
    expect_safe_401(v, kSecret, {sig});
    EXPECT_NE(v.reason.find("malformed Stripe-Signature header"), std::string::npos) << bad << " -> " << v.reason;
  }
}

TEST_F(StripeSignature, ExpiredTimestamp) {
  const auto old = FixedClock::kStart - 301;
  const auto v = verify_stripe_signature(signed_request(kBody, old), kSecret, clock);
  expect_safe_401(v, kSecret, {expected_hex(kBody, old)});
  EXPECT_NE(v.reason.find("outside the tolerance"), std::string::npos) << v.reason;
}

TEST_F(StripeSignature, FarFutureTimestamp) {
  const auto future = FixedClock::kStart + 3600;
  const auto v = verify_stripe_signature(signed_request(kBody, future), kSecret, clock);
  expect_safe_401(v, kSecret, {expected_hex(kBody, future)});
}

TEST_F(StripeSignature, CustomToleranceHeaderAndScheme) {
  SignedHeaderOptions options;
  options.header = "X-Signed";
  options.scheme = "v2";
  options.tolerance = std::chrono::seconds(10);
  auto r = request_with(kBody, {{"X-Signed", stripe_signature_header(kSecret, FixedClock::kStart - 5, kBody, "v2")}});
  EXPECT_TRUE(verify_stripe_signature(r, kSecret, clock, options).valid);
  clock.set_unix(FixedClock::kStart + 6);
  EXPECT_FALSE(verify_stripe_signature(r, kSecret, clock, options).valid);
}

TEST_F(StripeSignature, ReplayGuardRejectsASecondDelivery) {
  ReplayGuard guard;
  SignedHeaderOptions options;
  options.replay_guard = &guard;
  const auto r = signed_request(kBody, FixedClock::kStart);
  EXPECT_TRUE(verify_stripe_signature(r, kSecret, clock, options).valid);
  const auto again = verify_stripe_signature(r, kSecret, clock, options);
  expect_safe_401(again, kSecret, {expected_hex(kBody, FixedClock::kStart)});
  EXPECT_NE(again.reason.find("replay"), std::string::npos);
  // A new delivery (new timestamp, new signature) is fine.
  EXPECT_TRUE(verify_stripe_signature(signed_request(kBody, FixedClock::kStart + 1), kSecret, clock, options).valid);
  // A forged request never reaches the guard.
  EXPECT_FALSE(verify_stripe_signature(signed_request(kBody, FixedClock::kStart, "x"), kSecret, clock, options).valid);
  EXPECT_EQ(guard.size(), 2U);
}

// ---- Slack: v0=hex(HMAC(secret, "v0:" + timestamp + ":" + body)) ----

// The worked example of Slack's "Verifying requests from Slack" page.
constexpr const char* kSlackDocSecret = "8f742231b10e8888abcd99yyyzzz85a5";
constexpr const char* kSlackDocTimestamp = "1531420618";
constexpr const char* kSlackDocBody =
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
    "channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
    "response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%"
    "2F96rGlfmibIGlgcZRskXaIFfN&"
    "trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
constexpr const char* kSlackDocSignature =
    "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

WebhookRequest slack_request(const std::string& body, const std::string& timestamp,
                             const std::string& signature) {
  return request_with(body, {{"X-Slack-Request-Timestamp", timestamp}, {"X-Slack-Signature", signature}});
}

TEST(SlackSignature, SlacksDocumentedExampleVerifies) {
  EXPECT_EQ(slack_signature(kSlackDocSecret, slack_request(kSlackDocBody, kSlackDocTimestamp, "")),
            kSlackDocSignature);
  FixedClock clock;
  clock.set_unix(1531420618 + 60);
  const auto v = verify_slack_signature(slack_request(kSlackDocBody, kSlackDocTimestamp, kSlackDocSignature),
                                        kSlackDocSecret, clock);
  EXPECT_TRUE(v.valid) << v.reason;
  // Header names are case-insensitive; hex digits too.
  std::string upper = kSlackDocSignature;
  for (std::size_t i = 3; i < upper.size(); ++i) upper[i] = static_cast<char>(std::toupper(upper[i]));
  auto lower_names = request_with(
      kSlackDocBody, {{"x-slack-request-timestamp", kSlackDocTimestamp}, {"x-slack-signature", upper}});
  EXPECT_TRUE(verify_slack_signature(lower_names, kSlackDocSecret, clock).valid);
}

TEST(SlackSignature, WrongSecretTamperedBodyOrTimestampAreRefusedSafely) {
  FixedClock clock;
  clock.set_unix(1531420618);
  const auto check = [&](const WebhookRequest& r) {
    return verify_slack_signature(r, kSlackDocSecret, clock);
  };
  const std::string hex = std::string(kSlackDocSignature).substr(3);
  const auto wrong_secret = check(slack_request(kSlackDocBody, kSlackDocTimestamp,
                                                slack_signature("other", slack_request(kSlackDocBody, kSlackDocTimestamp, ""))));
  expect_safe_401(wrong_secret, kSlackDocSecret, {hex});
  EXPECT_EQ(wrong_secret.reason, "invalid webhook signature in X-Slack-Signature header");
  const auto tampered =
      check(slack_request(std::string(kSlackDocBody) + "&x=1", kSlackDocTimestamp, kSlackDocSignature));
  expect_safe_401(tampered, kSlackDocSecret, {hex});
  // The timestamp is signed: moving it (to dodge the tolerance) breaks the signature.
  expect_safe_401(check(slack_request(kSlackDocBody, "1531420619", kSlackDocSignature)), kSlackDocSecret,
                  {hex});
}

TEST(SlackSignature, AStaleOrFarFutureTimestampIsRefusedAfterTheSignatureMatches) {
  FixedClock clock;
  const auto r = slack_request(kSlackDocBody, kSlackDocTimestamp, kSlackDocSignature);
  clock.set_unix(1531420618 + 300);
  EXPECT_TRUE(verify_slack_signature(r, kSlackDocSecret, clock).valid) << "5 minutes is still fresh";
  clock.set_unix(1531420618 + 301);
  const auto stale = verify_slack_signature(r, kSlackDocSecret, clock);
  expect_safe_401(stale, kSlackDocSecret, {});
  EXPECT_EQ(stale.reason,
            "webhook timestamp in X-Slack-Request-Timestamp header is outside the tolerance "
            "(expired or replayed)");
  clock.set_unix(1531420618 - 301);
  EXPECT_FALSE(verify_slack_signature(r, kSlackDocSecret, clock).valid);
  clock.set_unix(1531420618 + 3600);
  EXPECT_TRUE(verify_slack_signature(r, kSlackDocSecret, clock, {.tolerance = std::chrono::hours(2)}).valid);
}

TEST(SlackSignature, MissingOrMalformedHeadersAndAnEmptySecretAreNamed) {
  FixedClock clock;
  clock.set_unix(1531420618);
  const auto reason = [&](const WebhookRequest& r, std::string_view secret = kSlackDocSecret) {
    const auto v = verify_slack_signature(r, secret, clock);
    EXPECT_FALSE(v.valid);
    return v.reason;
  };
  EXPECT_EQ(reason(request_with(kSlackDocBody, {{"X-Slack-Request-Timestamp", kSlackDocTimestamp}})),
            "missing X-Slack-Signature header");
  EXPECT_EQ(reason(request_with(kSlackDocBody, {{"X-Slack-Signature", kSlackDocSignature}})),
            "missing X-Slack-Request-Timestamp header");
  EXPECT_EQ(reason(slack_request(kSlackDocBody, "yesterday", kSlackDocSignature)),
            "malformed X-Slack-Request-Timestamp header: not a unix time in seconds");
  EXPECT_EQ(
      reason(slack_request(kSlackDocBody, kSlackDocTimestamp, std::string(kSlackDocSignature).substr(3))),
      "malformed X-Slack-Signature header: expected prefix 'v0='");
  EXPECT_EQ(reason(slack_request(kSlackDocBody, kSlackDocTimestamp, "v0=abc")),
            "malformed X-Slack-Signature header: expected 64 hex digits");
  EXPECT_EQ(reason(slack_request(kSlackDocBody, kSlackDocTimestamp, kSlackDocSignature), ""),
            "webhook secret not configured; cannot verify signature");
}

TEST(SlackSignature, ReplayGuardRejectsASecondDelivery) {
  FixedClock clock;
  clock.set_unix(1531420618);
  ReplayGuard guard;
  const auto r = slack_request(kSlackDocBody, kSlackDocTimestamp, kSlackDocSignature);
  EXPECT_TRUE(verify_slack_signature(r, kSlackDocSecret, clock, {.replay_guard = &guard}).valid);
  const auto again = verify_slack_signature(r, kSlackDocSecret, clock, {.replay_guard = &guard});
  EXPECT_EQ(again.reason, "webhook signature in X-Slack-Signature header was already used (replay)");
}

// ---- HubSpot v3: base64(HMAC(client secret, method + URI + body + timestamp ms)) ----

// The placeholder secret and the CRM event body of HubSpot's request-validation page.
constexpr const char* kHubSpotSecret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
constexpr const char* kHubSpotBody =
    R"([{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,)"
    R"("subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",)"
    R"("changeFlag":"NEW","appId":54321}])";
// The path as received, with escapes HubSpot decodes before signing (%3A %28 %29) and one it keeps (%20).
constexpr const char* kHubSpotPath = "/webhooks/svi_hub?portal=62515&note=a%3Ab%20c%281%29";
// python3: base64.b64encode(hmac.new(secret, b'POST' +
//   b'https://hooks.example.com/webhooks/svi_hub?portal=62515&note=a:b%20c(1)' + body + b'1704067200000',
//   sha256).digest())
constexpr const char* kHubSpotSignature = "UIxqIlEqGl6CuopaQw31rQGOaA/1mwrEN86lh+1CciA=";
const std::string kHubSpotMillis = std::to_string(FixedClock::kStart * 1000);

WebhookRequest hubspot_request(const std::string& method, const std::string& path, const std::string& body,
                               const std::string& millis, const std::string& signature) {
  WebhookRequest r =
      request_with(body, {{"X-HubSpot-Signature-v3", signature}, {"X-HubSpot-Request-Timestamp", millis}});
  r.method = method;
  r.path = path;
  return r;
}

const HubSpotSignatureOptions kHubSpotOptions{.public_base_url = "https://hooks.example.com/"};

TEST(HubSpotSignature, AnIndependentlyComputedSignatureVerifies) {
  FixedClock clock;
  EXPECT_EQ(
      hubspot_signed_uri("https://hooks.example.com/webhooks/svi_hub?portal=62515&note=a%3Ab%20c%281%29"),
      "https://hooks.example.com/webhooks/svi_hub?portal=62515&note=a:b%20c(1)");
  EXPECT_EQ(hubspot_signature_v3(kHubSpotSecret,
                                 hubspot_request("POST", kHubSpotPath, kHubSpotBody, kHubSpotMillis, ""),
                                 kHubSpotOptions),
            kHubSpotSignature);
  const auto r = hubspot_request("POST", kHubSpotPath, kHubSpotBody, kHubSpotMillis, kHubSpotSignature);
  const auto v = verify_hubspot_signature_v3(r, kHubSpotSecret, clock, kHubSpotOptions);
  EXPECT_TRUE(v.valid) << v.reason;
  // The base URL with or without its trailing slash.
  EXPECT_TRUE(
      verify_hubspot_signature_v3(r, kHubSpotSecret, clock, {.public_base_url = "https://hooks.example.com"})
          .valid);
}

TEST(HubSpotSignature, DecodesExactlyTheEscapesHubSpotLists) {
  EXPECT_EQ(hubspot_signed_uri("%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B"), ":/?@!$'()*,;");
  EXPECT_EQ(hubspot_signed_uri("%3a%2f%3b"), ":/;") << "either case";
  EXPECT_EQ(hubspot_signed_uri("%20%25%26%3D%2B%41%3"), "%20%25%26%3D%2B%41%3")
      << "every other escape is kept";
  EXPECT_EQ(hubspot_signed_uri("%"), "%");
}

TEST(HubSpotSignature, WrongSecretOrATamperedMethodUriOrBodyIsRefusedSafely) {
  FixedClock clock;
  const auto refused = [&](const WebhookRequest& r,
                           const HubSpotSignatureOptions& options = kHubSpotOptions) {
    const auto v = verify_hubspot_signature_v3(r, kHubSpotSecret, clock, options);
    expect_safe_401(v, kHubSpotSecret, {kHubSpotSignature});
    EXPECT_EQ(v.reason, "invalid webhook signature in X-HubSpot-Signature-v3 header");
  };
  const auto good = hubspot_request("POST", kHubSpotPath, kHubSpotBody, kHubSpotMillis, kHubSpotSignature);
  const auto v = verify_hubspot_signature_v3(good, "other-secret", clock, kHubSpotOptions);
  EXPECT_FALSE(v.valid);
  refused(hubspot_request("PUT", kHubSpotPath, kHubSpotBody, kHubSpotMillis, kHubSpotSignature));
  refused(hubspot_request("POST", "/webhooks/svi_other?portal=62515&note=a%3Ab%20c%281%29", kHubSpotBody,
                          kHubSpotMillis, kHubSpotSignature));
  refused(hubspot_request("POST", "/webhooks/svi_hub?portal=62515&note=a%3Ab+c%281%29", kHubSpotBody,
                          kHubSpotMillis, kHubSpotSignature));
  refused(hubspot_request("POST", kHubSpotPath, std::string(kHubSpotBody) + " ", kHubSpotMillis,
                          kHubSpotSignature));
  refused(hubspot_request("POST", kHubSpotPath, kHubSpotBody, std::to_string(FixedClock::kStart * 1000 + 1),
                          kHubSpotSignature));
  refused(good, {.public_base_url = "http://hooks.example.com"});
  refused(good, {.public_base_url = "https://evil.example.com"});
}

TEST(HubSpotSignature, TheTimestampIsInMillisecondsAndStaleOnesAreRefused) {
  FixedClock clock;
  const auto at = [&](std::int64_t offset_seconds) {
    clock.set_unix(FixedClock::kStart + offset_seconds);
    return verify_hubspot_signature_v3(
        hubspot_request("POST", kHubSpotPath, kHubSpotBody, kHubSpotMillis, kHubSpotSignature),
        kHubSpotSecret, clock, kHubSpotOptions);
  };
  EXPECT_TRUE(at(300).valid) << "5 minutes old";
  const auto stale = at(301);
  expect_safe_401(stale, kHubSpotSecret, {kHubSpotSignature});
  EXPECT_EQ(stale.reason,
            "webhook timestamp in X-HubSpot-Request-Timestamp header is outside the tolerance "
            "(expired or replayed)");
  EXPECT_FALSE(at(-301).valid) << "far future";
  // A timestamp in seconds, read as the milliseconds HubSpot sends, is January 1970: stale.
  clock.set_unix(FixedClock::kStart);
  const std::string seconds = std::to_string(FixedClock::kStart);
  auto in_seconds = hubspot_request("POST", kHubSpotPath, kHubSpotBody, seconds, "");
  in_seconds.headers[0].second = hubspot_signature_v3(kHubSpotSecret, in_seconds, kHubSpotOptions);
  const auto as_seconds = verify_hubspot_signature_v3(in_seconds, kHubSpotSecret, clock, kHubSpotOptions);
  EXPECT_FALSE(as_seconds.valid) << "a timestamp in seconds is 1970 in milliseconds";
}

TEST(HubSpotSignature, MissingOrMalformedHeadersAnEmptySecretAndNoBaseUrlAreNamed) {
  FixedClock clock;
  const auto reason = [&](const WebhookRequest& r, std::string_view secret = kHubSpotSecret,
                          const HubSpotSignatureOptions& options = kHubSpotOptions) {
    const auto v = verify_hubspot_signature_v3(r, secret, clock, options);
    EXPECT_FALSE(v.valid);
    return v.reason;
  };
  const auto good = hubspot_request("POST", kHubSpotPath, kHubSpotBody, kHubSpotMillis, kHubSpotSignature);
  WebhookRequest no_sig = good;
  no_sig.headers = {{"X-HubSpot-Request-Timestamp", kHubSpotMillis}};
  EXPECT_EQ(reason(no_sig), "missing X-HubSpot-Signature-v3 header");
  WebhookRequest no_ts = good;
  no_ts.headers = {{"X-HubSpot-Signature-v3", kHubSpotSignature}};
  EXPECT_EQ(reason(no_ts), "missing X-HubSpot-Request-Timestamp header");
  EXPECT_EQ(reason(hubspot_request("POST", kHubSpotPath, kHubSpotBody, "-1", kHubSpotSignature)),
            "malformed X-HubSpot-Request-Timestamp header: not a unix time in milliseconds");
  EXPECT_EQ(reason(hubspot_request("POST", kHubSpotPath, kHubSpotBody, kHubSpotMillis, "not base64!")),
            "malformed X-HubSpot-Signature-v3 header: expected base64 of 32 bytes");
  EXPECT_EQ(reason(good, ""), "webhook secret not configured; cannot verify signature");
  EXPECT_EQ(reason(good, kHubSpotSecret, {}),
            "HubSpot public_base_url not configured; cannot verify the signed URI");
}

TEST(HubSpotSignature, ReplayGuardRejectsASecondDelivery) {
  FixedClock clock;
  ReplayGuard guard;
  HubSpotSignatureOptions options = kHubSpotOptions;
  options.replay_guard = &guard;
  const auto r = hubspot_request("POST", kHubSpotPath, kHubSpotBody, kHubSpotMillis, kHubSpotSignature);
  EXPECT_TRUE(verify_hubspot_signature_v3(r, kHubSpotSecret, clock, options).valid);
  EXPECT_EQ(verify_hubspot_signature_v3(r, kHubSpotSecret, clock, options).reason,
            "webhook signature in X-HubSpot-Signature-v3 header was already used (replay)");
}

TEST(ReplayGuardTest, ForgetsExpiredEntriesAndStaysBounded) {
  ReplayGuard guard(3);
  const Timestamp t0{std::chrono::seconds(1000)};
  EXPECT_TRUE(guard.first_use("a", t0 + std::chrono::seconds(10), t0));
  EXPECT_FALSE(guard.first_use("a", t0 + std::chrono::seconds(10), t0));
  EXPECT_TRUE(guard.first_use("b", t0 + std::chrono::seconds(20), t0));
  EXPECT_TRUE(guard.first_use("c", t0 + std::chrono::seconds(30), t0));
  EXPECT_TRUE(guard.first_use("d", t0 + std::chrono::seconds(40), t0));  // evicts "a" (soonest to expire)
  EXPECT_EQ(guard.size(), 3U);
  EXPECT_TRUE(guard.first_use("a", t0 + std::chrono::seconds(10), t0));
  // Past their expiry, entries are pruned.
  EXPECT_TRUE(guard.first_use("e", t0 + std::chrono::seconds(100), t0 + std::chrono::seconds(50)));
  EXPECT_EQ(guard.size(), 1U);
}

TEST(VerificationResult, ConvertsToAResponse) {
  const WebhookResponse ok = Verification::ok();
  EXPECT_EQ(ok.status, 202);
  const WebhookResponse bad = Verification::fail("because");
  EXPECT_EQ(bad.status, 401);
  EXPECT_EQ(bad.body, "because");
  EXPECT_FALSE(static_cast<bool>(Verification::fail("x")));
}

}  // namespace
}  // namespace webhookdb::webhooks
