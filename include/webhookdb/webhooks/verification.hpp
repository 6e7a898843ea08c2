#pragma once
// Signature checks for the common webhook schemes. Each returns a
// Verification that converts to a WebhookResponse, so a replicator writes
//
//   WebhookResponse verify_webhook(const WebhookRequest& r) override {
//     return webhooks::verify_stripe_signature(r, integration().webhook_secret, clock());
//   }
//
// Slack (verify_slack_signature) and HubSpot v3 (verify_hubspot_signature_v3)
// sign a timestamp, and HubSpot the method and URI, with the body.
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
#include "webhookdb/export.hpp"
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
[[nodiscard]] WEBHOOKDB_EXPORT Verification verify_hmac_sha256_hex(const WebhookRequest& request,
                                                                   std::string_view secret,
                                                                   std::string_view header,
                                                                   std::string_view prefix = {});

// HMAC-SHA256 of the raw body, base64-encoded in `header` after an optional `prefix`.
[[nodiscard]] WEBHOOKDB_EXPORT Verification verify_hmac_sha256_base64(const WebhookRequest& request,
                                                                      std::string_view secret,
                                                                      std::string_view header,
                                                                      std::string_view prefix = {});

// Shopify: base64 HMAC-SHA256 of the raw body in X-Shopify-Hmac-Sha256.
[[nodiscard]] WEBHOOKDB_EXPORT Verification
verify_shopify_hmac(const WebhookRequest& request, std::string_view secret,
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
[[nodiscard]] WEBHOOKDB_EXPORT Verification verify_stripe_signature(const WebhookRequest& request,
                                                                    std::string_view secret,
                                                                    const Clock& clock,
                                                                    const SignedHeaderOptions& options = {});

// The header value a Stripe-style sender would send; for tests and senders.
[[nodiscard]] WEBHOOKDB_EXPORT std::string stripe_signature_header(std::string_view secret,
                                                                   std::int64_t unix_seconds,
                                                                   std::string_view body,
                                                                   std::string_view scheme = "v1");

// --- Schemes that sign more than the body ---
// Each checks the signature first, then that the timestamp is within
// `tolerance` of the clock's now, either way (a timestamp in the future would
// let a captured request be replayed until it is stale), then the replay guard
// when one is given.

struct SlackSignatureOptions {
  std::string signature_header = "X-Slack-Signature";
  std::string timestamp_header = "X-Slack-Request-Timestamp";  // unix seconds
  std::chrono::seconds tolerance{300};
  // Optional, not owned: rejects a second delivery of one signature.
  ReplayGuard* replay_guard = nullptr;
};

// Slack: X-Slack-Signature is "v0=" + hex HMAC-SHA256 under the signing secret
// of "v0:" + X-Slack-Request-Timestamp (as sent) + ":" + the raw body.
[[nodiscard]] WEBHOOKDB_EXPORT Verification verify_slack_signature(const WebhookRequest& request,
                                                                   std::string_view signing_secret,
                                                                   const Clock& clock,
                                                                   const SlackSignatureOptions& options = {});

// The X-Slack-Signature value a sender would send for `request` (its body
// and its timestamp header, "" when it has none); for tests and senders.
[[nodiscard]] WEBHOOKDB_EXPORT std::string slack_signature(std::string_view signing_secret,
                                                           const WebhookRequest& request,
                                                           const SlackSignatureOptions& options = {});

struct HubSpotSignatureOptions {
  // Required: the scheme, host and any path prefix HubSpot calls, up to
  // where WebhookRequest::path begins ("https://hooks.example.com"). HubSpot
  // signs the full URI it called; behind a proxy the receiver sees neither
  // the scheme nor a trustworthy host, so they are configured, not guessed.
  std::string public_base_url;
  std::string signature_header = "X-HubSpot-Signature-v3";
  std::string timestamp_header = "X-HubSpot-Request-Timestamp";  // unix milliseconds
  std::chrono::seconds tolerance{300};
  // Optional, not owned: rejects a second delivery of one signature.
  ReplayGuard* replay_guard = nullptr;
};

// HubSpot v3: X-HubSpot-Signature-v3 is base64 HMAC-SHA256 under the app's
// client secret of method + URI + raw body + X-HubSpot-Request-Timestamp (as
// sent, milliseconds), the URI being public_base_url + request.path with the
// escapes HubSpot decodes before signing decoded (hubspot_signed_uri).
[[nodiscard]] WEBHOOKDB_EXPORT Verification
verify_hubspot_signature_v3(const WebhookRequest& request, std::string_view client_secret, const Clock& clock,
                            const HubSpotSignatureOptions& options);

// `uri` as HubSpot signs it: %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B
// (either case) decoded to : / ? @ ! $ ' ( ) * , ; and every other escape kept.
[[nodiscard]] WEBHOOKDB_EXPORT std::string hubspot_signed_uri(std::string_view uri);

// The X-HubSpot-Signature-v3 value a sender would send for `request` (its
// method, path, body and timestamp header, "" when it has none) arriving
// under options.public_base_url; for tests and senders.
[[nodiscard]] WEBHOOKDB_EXPORT std::string hubspot_signature_v3(std::string_view client_secret,
                                                                const WebhookRequest& request,
                                                                const HubSpotSignatureOptions& options);

}  // namespace webhookdb::webhooks
