#pragma once
// Pagination helpers for Replicator::fetch_backfill_page. Each style turns a
// pagination token into a request and the response into a BackfillPage, so a
// replicator's fetch is a few lines:
//
//   pagination::StartingAfter pages_{{.limit = 100}};
//
//   BackfillPage fetch_backfill_page(const std::string& token,
//                                    const std::optional<Timestamp>& since,
//                                    const CancellationToken& cancel) override {
//     HttpRequest first{.url = pagination::with_query(integration().api_url + "/v1/charges",
//                                                     {{"updated_since", "..."}})};
//     return pages_.fetch(*context().http, first, token, cancel);
//   }
//
// Every style:
// - builds every request from `first`, the first page's too (token ""):
//   Paginator::request_for is called for the empty token as well, so a style
//   that sets a limit or a cursor field sets it on the first request (headers,
//   method and timeout kept);
// - throws HttpError for a status >= 300 that is not followed, and
//   HttpConnectionError (retryable, like a truncated transfer) when a 2xx body
//   is empty or not JSON (a cut-off body, a proxy's HTML page);
// - returns items = null when the body lacks the items array, which the page
//   loop reports as an error;
// - throws InvariantViolation naming the token when a next token repeats one
//   seen recently in the same walk (the last RepeatGuard::kRememberedTokens),
//   or a page repeats the previous page's items: the backfill would otherwise
//   loop forever;
// - throws InvalidInput naming the field when a total (total_pages, total)
//   is not a count between 0 and 2^53 ({"total_pages": 1e300}).
// Page-number and offset styles whose total is known (LinkHeader with a
// rel="last" link, PageNumber with total_pages_path or total_count_path,
// Offset with total_path) name the pages ahead (BackfillPage::ahead), so the
// page loop may fetch several at once (BackfillOptions::concurrent_pages).
// Those fetches skip the repeat detection below: their tokens are counted,
// not followed, and the page loop checks that each page names the next one.
// A paginator is thread-safe and may be shared by concurrent walks (the
// partitions of a parallel backfill): its repeat detection keeps one state
// per `first` request, so `first` must be the same for every page of a walk
// and differ between walks that run at the same time.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/backfiller.hpp"
#include "webhookdb/cancellation.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/http_client.hpp"
#include "webhookdb/json_limits.hpp"
#include "webhookdb/json_path.hpp"
#include "webhookdb/url.hpp"

namespace webhookdb::pagination {

using QueryParams = url::QueryParams;
// A path into a JSON body ({"data"}, {"links", "next"}), read with json_at (json_path.hpp).
using webhookdb::JsonPath;

// --- URLs --- (url.hpp is their home; the paginators' callers reach them here too)

using url::origin_of;
using url::query_param;
using url::resolve_url;
using url::set_query_param;
using url::with_query;

// --- Link header (RFC 8288) ---

struct WEBHOOKDB_EXPORT Link {
  std::string target;  // as written between < and >
  // Parameter names lower-cased; the first occurrence of each wins.
  std::map<std::string, std::string> params;
  // The rel values, lower-cased ("next", "last"...).
  [[nodiscard]] std::vector<std::string> rels() const;
};

// Parses one Link header value with any number of comma-separated links;
// tolerates blanks, unquoted and quoted values, commas and semicolons inside
// <...> and quotes, and skips malformed entries instead of failing.
[[nodiscard]] WEBHOOKDB_EXPORT std::vector<Link> parse_link_header(std::string_view value);
// The target of the first link with relation `rel` across every Link header,
// resolved against `base_url`; nullopt when there is none.
[[nodiscard]] WEBHOOKDB_EXPORT std::optional<std::string> find_link(const Headers& headers,
                                                                    std::string_view base_url,
                                                                    std::string_view rel = "next");

// --- Bodies ---

// The JSON of a 2xx response; HttpConnectionError (retryable: a truncated
// transfer) naming the request when the body is empty or not JSON, and
// InvalidJson (an InvalidInput, not retried: the same page would fail again)
// when it is larger or nested deeper than `limits`.
[[nodiscard]] WEBHOOKDB_EXPORT nlohmann::json parse_json_body(const HttpRequest& request,
                                                              const HttpResponse& response,
                                                              const JsonLimits& limits = {});

// Catches a pagination token that repeats within one walk, and a page whose
// items repeat the previous page's (an API that ignores the page parameter).
// Thread-safe. Walks named by different `walk` strings are tracked apart, so
// concurrent walks do not reset each other; the overloads without `walk`
// track a single walk.
class WEBHOOKDB_EXPORT RepeatGuard {
 public:
  // Before fetching `token`: the empty token, or one that is not the last
  // next token seen, starts a new walk (first page, resume, new job).
  void begin(const std::string& walk, const std::string& token);
  // After a page: throws InvariantViolation naming the token (redacted and
  // shortened) when `next` was seen before in this walk, or when the page
  // has the same items as the previous one.
  void end(const std::string& walk, const std::string& token, const std::string& next,
           const nlohmann::json& items);

  void begin(const std::string& token) { begin(std::string(), token); }
  void end(const std::string& token, const std::string& next, const nlohmann::json& items) {
    end(std::string(), token, next, items);
  }

  // Walks tracked at once; beyond it the least recently used one is
  // forgotten (walks abandoned by an error or a cancel never end).
  static constexpr std::size_t kMaxWalks = 256;
  // Tokens remembered per walk (as 64-bit hashes, the most recent ones), so
  // the guard's memory stays bounded (at most about 256 x 1024 x 48 bytes)
  // however long a walk runs. The trade-off: a cycle longer than this is not
  // recognised here; the page loop's BackfillLimits (consecutive empty pages,
  // page budget) stop such a walk instead.
  static constexpr std::size_t kRememberedTokens = 1024;

 private:
  struct Walk {
    std::string last_next;
    std::unordered_set<std::uint64_t> seen;
    std::deque<std::uint64_t> order;  // oldest first
    std::string previous_fingerprint;
    std::uint64_t used = 0;
  };
  // False when `token` is among the remembered ones; remembers it otherwise.
  static bool remember(Walk& walk, const std::string& token);
  std::mutex mutex_;
  std::unordered_map<std::string, Walk> walks_;
  std::uint64_t uses_ = 0;
};

// The base of every style. A style of your own overrides the three hooks.
class WEBHOOKDB_EXPORT Paginator {
 public:
  Paginator() = default;
  virtual ~Paginator() = default;
  Paginator(const Paginator&) = delete;
  Paginator& operator=(const Paginator&) = delete;

  // The page for `token` ("" is the first page), requested as request_for(first, token).
  BackfillPage fetch(HttpClient& http, const HttpRequest& first, const std::string& token,
                     const CancellationToken& cancel = CancellationToken{});

  // Limits on each page body (default: 64 MiB, 512 levels). Set before fetching.
  void set_json_limits(const JsonLimits& limits) { json_limits_ = limits; }
  [[nodiscard]] const JsonLimits& json_limits() const noexcept { return json_limits_; }

 protected:
  // The request for `token`, built from `first`. Called for every page, the
  // first one too: `token` is "" there, and the request it returns (not
  // `first` itself) is what is sent, so a limit added here is on page one.
  [[nodiscard]] virtual HttpRequest request_for(const HttpRequest& first, const std::string& token) const = 0;
  [[nodiscard]] virtual const JsonPath& items_path() const = 0;
  // `items` is null when the body lacks them.
  [[nodiscard]] virtual std::string next_token(const HttpRequest& first, const HttpRequest& sent,
                                               const HttpResponse& response, const nlohmann::json& body,
                                               const nlohmann::json* items,
                                               const std::string& token) const = 0;
  // The pages known to follow, when the response says how many there are;
  // nullptr (the default) when only `next` is known. Called when `next` is
  // not empty.
  [[nodiscard]] virtual std::shared_ptr<const PagesAhead> pages_ahead(const HttpRequest& /*sent*/,
                                                                      const HttpResponse& /*response*/,
                                                                      const nlohmann::json& /*body*/,
                                                                      const nlohmann::json* /*items*/,
                                                                      const std::string& /*next*/) const {
    return nullptr;
  }

 private:
  RepeatGuard guard_;
  JsonLimits json_limits_;
};

// Stripe: ?limit=N&starting_after=<id of the last item>, and
// {"data": [...], "has_more": true}. Without has_more in the body, a full
// page (limit items) means there may be more.
struct StartingAfterOptions {
  int limit = 100;  // 0: not sent
  std::string limit_param = "limit";
  std::string cursor_param = "starting_after";
  JsonPath items_path{"data"};
  JsonPath has_more_path{"has_more"};
  JsonPath id_path{"id"};
};

class WEBHOOKDB_EXPORT StartingAfter final : public Paginator {
 public:
  explicit StartingAfter(StartingAfterOptions options = {}) : options_(std::move(options)) {}

 protected:
  [[nodiscard]] HttpRequest request_for(const HttpRequest& first, const std::string& token) const override;
  [[nodiscard]] const JsonPath& items_path() const override { return options_.items_path; }
  [[nodiscard]] std::string next_token(const HttpRequest& first, const HttpRequest& sent,
                                       const HttpResponse& response, const nlohmann::json& body,
                                       const nlohmann::json* items, const std::string& token) const override;

 private:
  StartingAfterOptions options_;
};

// An opaque cursor in the body: ?cursor=<next_cursor>, and
// {"data": [...], "next_cursor": "..."}; null, "" or missing ends the walk.
struct CursorOptions {
  int limit = 100;  // 0: not sent
  std::string limit_param = "limit";
  std::string cursor_param = "cursor";
  JsonPath items_path{"data"};
  JsonPath next_cursor_path{"next_cursor"};
};

class WEBHOOKDB_EXPORT Cursor final : public Paginator {
 public:
  explicit Cursor(CursorOptions options = {}) : options_(std::move(options)) {}

 protected:
  [[nodiscard]] HttpRequest request_for(const HttpRequest& first, const std::string& token) const override;
  [[nodiscard]] const JsonPath& items_path() const override { return options_.items_path; }
  [[nodiscard]] std::string next_token(const HttpRequest& first, const HttpRequest& sent,
                                       const HttpResponse& response, const nlohmann::json& body,
                                       const nlohmann::json* items, const std::string& token) const override;

 private:
  CursorOptions options_;
};

// Link: <https://api/x?page=2>; rel="next" (GitHub, Shopify). The token is
// the next URL, resolved against the request's. By default the items are the
// body itself (a JSON array).
struct LinkHeaderOptions {
  JsonPath items_path{};
  std::string rel = "next";
  // Refuse a next URL on another origin: the request's credentials would go there.
  bool same_origin = true;
  // With a rel="last" link whose URL is the next one with another value of
  // this query parameter (GitHub's page=N), the pages in between are known
  // ahead: the next URL with page set to each number. Empty: never.
  std::string page_param = "page";
};

class WEBHOOKDB_EXPORT LinkHeader final : public Paginator {
 public:
  explicit LinkHeader(LinkHeaderOptions options = {}) : options_(std::move(options)) {}

 protected:
  [[nodiscard]] HttpRequest request_for(const HttpRequest& first, const std::string& token) const override;
  [[nodiscard]] const JsonPath& items_path() const override { return options_.items_path; }
  [[nodiscard]] std::string next_token(const HttpRequest& first, const HttpRequest& sent,
                                       const HttpResponse& response, const nlohmann::json& body,
                                       const nlohmann::json* items, const std::string& token) const override;
  [[nodiscard]] std::shared_ptr<const PagesAhead> pages_ahead(const HttpRequest& sent, const HttpResponse& response,
                                                              const nlohmann::json& body, const nlohmann::json* items,
                                                              const std::string& next) const override;

 private:
  LinkHeaderOptions options_;
};

// ?page=N&per_page=M. Ends on an empty page, a short page (fewer than
// per_page items), or at total_pages (or total_count / per_page) when the
// body says so; then the pages up to it are known ahead.
struct PageNumberOptions {
  int per_page = 100;  // 0: not sent, and only an empty page ends the walk
  int first_page = 1;
  std::string page_param = "page";
  std::string per_page_param = "per_page";
  JsonPath items_path{"data"};
  JsonPath total_pages_path{};  // empty: not used
  // The number of items in every page together (used when total_pages_path
  // is empty or absent, and per_page is set). Empty: not used.
  JsonPath total_count_path{};
};

class WEBHOOKDB_EXPORT PageNumber final : public Paginator {
 public:
  explicit PageNumber(PageNumberOptions options = {}) : options_(std::move(options)) {}

 protected:
  [[nodiscard]] HttpRequest request_for(const HttpRequest& first, const std::string& token) const override;
  [[nodiscard]] const JsonPath& items_path() const override { return options_.items_path; }
  [[nodiscard]] std::string next_token(const HttpRequest& first, const HttpRequest& sent,
                                       const HttpResponse& response, const nlohmann::json& body,
                                       const nlohmann::json* items, const std::string& token) const override;
  [[nodiscard]] std::shared_ptr<const PagesAhead> pages_ahead(const HttpRequest& sent, const HttpResponse& response,
                                                              const nlohmann::json& body, const nlohmann::json* items,
                                                              const std::string& next) const override;

 private:
  [[nodiscard]] long long page_of(const std::string& token) const;
  // The last page the body names (total_pages, or total_count / per_page).
  [[nodiscard]] std::optional<long long> last_page(const nlohmann::json& body) const;
  PageNumberOptions options_;
};

// ?offset=O&limit=L; the next offset is O plus the items received. Ends on an
// empty page, a short page, or at the total when the body says so; then the
// offsets up to it (a full page of `limit` each) are known ahead.
struct OffsetOptions {
  int limit = 100;  // 0: not sent, and only an empty page ends the walk
  std::string offset_param = "offset";
  std::string limit_param = "limit";
  JsonPath items_path{"data"};
  JsonPath total_path{};  // empty: not used
};

class WEBHOOKDB_EXPORT Offset final : public Paginator {
 public:
  explicit Offset(OffsetOptions options = {}) : options_(std::move(options)) {}

 protected:
  [[nodiscard]] HttpRequest request_for(const HttpRequest& first, const std::string& token) const override;
  [[nodiscard]] const JsonPath& items_path() const override { return options_.items_path; }
  [[nodiscard]] std::string next_token(const HttpRequest& first, const HttpRequest& sent,
                                       const HttpResponse& response, const nlohmann::json& body,
                                       const nlohmann::json* items, const std::string& token) const override;
  [[nodiscard]] std::shared_ptr<const PagesAhead> pages_ahead(const HttpRequest& sent, const HttpResponse& response,
                                                              const nlohmann::json& body, const nlohmann::json* items,
                                                              const std::string& next) const override;

 private:
  [[nodiscard]] long long offset_of(const std::string& token) const;
  OffsetOptions options_;
};

// The next page's URL in the body: {"data": [...], "next": "https://..."}
// (or a relative one, resolved against the request's URL). Null, "" or
// missing ends the walk.
struct NextUrlOptions {
  JsonPath items_path{"data"};
  JsonPath next_path{"next"};
  // Refuse a next URL on another origin: the request's credentials would go there.
  bool same_origin = true;
};

class WEBHOOKDB_EXPORT NextUrl final : public Paginator {
 public:
  explicit NextUrl(NextUrlOptions options = {}) : options_(std::move(options)) {}

 protected:
  [[nodiscard]] HttpRequest request_for(const HttpRequest& first, const std::string& token) const override;
  [[nodiscard]] const JsonPath& items_path() const override { return options_.items_path; }
  [[nodiscard]] std::string next_token(const HttpRequest& first, const HttpRequest& sent,
                                       const HttpResponse& response, const nlohmann::json& body,
                                       const nlohmann::json* items, const std::string& token) const override;

 private:
  NextUrlOptions options_;
};

// A cursor carried in a POST JSON body (search and query endpoints).
// `first` is the POST with its JSON object body (filters, sorts, properties);
// each page's request is `first` with `limit_field` and, after the first
// page, `cursor_field` set in that body (Content-Type: application/json added
// when absent). The next cursor is read at `next_cursor_path`; null, "" or
// missing ends the walk, and so does has_more = false when has_more_path is
// set. The defaults are HubSpot's CRM search:
//
//   POST /crm/v3/objects/contacts/search  {"filterGroups": [...], "limit": 100, "after": "200"}
//   -> {"total": 1200, "results": [...], "paging": {"next": {"after": "300"}}}
//
//   pagination::BodyCursor contacts_{{.limit = 100}};
//   HttpRequest first{.method = "POST", .url = base + "/crm/v3/objects/contacts/search",
//                     .body = R"({"sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]})"};
//   return contacts_.fetch(*context().http, first, token, cancel);
//
// Notion's database query (`POST /v1/databases/{id}/query`, body
// {"page_size": 100, "start_cursor": "..."}, response {"results": [...],
// "next_cursor": "...", "has_more": true}) is
//
//   pagination::BodyCursor pages_{{.limit_field = "page_size", .cursor_field = "start_cursor",
//                                  .next_cursor_path = {"next_cursor"}, .has_more_path = {"has_more"}}};
//
// The constructor throws BrokenSpecification naming the field for options
// that cannot work; fetch throws InvalidPrecondition when `first` is a GET or
// HEAD, or its body is not a JSON object (empty counts as {}).
struct BodyCursorOptions {
  int limit = 100;                    // 0: not sent
  std::string limit_field = "limit";  // top-level fields of the request body
  std::string cursor_field = "after";
  JsonPath items_path{"results"};
  JsonPath next_cursor_path{"paging", "next", "after"};
  // Empty: not read. Else has_more = false ends the walk whatever the cursor
  // says, and has_more = true without a cursor is an InvalidInput.
  JsonPath has_more_path{};
};

class WEBHOOKDB_EXPORT BodyCursor final : public Paginator {
 public:
  explicit BodyCursor(BodyCursorOptions options = {});

 protected:
  [[nodiscard]] HttpRequest request_for(const HttpRequest& first, const std::string& token) const override;
  [[nodiscard]] const JsonPath& items_path() const override { return options_.items_path; }
  [[nodiscard]] std::string next_token(const HttpRequest& first, const HttpRequest& sent,
                                       const HttpResponse& response, const nlohmann::json& body,
                                       const nlohmann::json* items, const std::string& token) const override;

 private:
  BodyCursorOptions options_;
};

}  // namespace webhookdb::pagination
