#include "api_server/shapes.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <ctime>
#include <optional>

namespace webhookdb::tools::shapes {
namespace {

using nlohmann::json;

std::optional<std::string> param(const Params& query, std::string_view name) {
  for (const auto& [k, v] : query) {
    if (k == name) return v;
  }
  return std::nullopt;
}

std::int64_t integer(std::string_view name, std::string_view text) {
  std::int64_t out = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size()) {
    throw BadParameter("Invalid integer: " + std::string(name) + "=" + std::string(text));
  }
  return out;
}

struct Bounds {
  std::int64_t fallback, low, high;
};

std::int64_t bounded(const Params& query, std::string_view name, Bounds b) {
  const auto text = param(query, name);
  if (!text) return b.fallback;
  const auto value = integer(name, *text);
  if (value < b.low || value > b.high) {
    throw BadParameter(std::string(name) + " must be between " + std::to_string(b.low) + " and " +
                       std::to_string(b.high));
  }
  return value;
}

// RFC 3986 unreserved characters kept, everything else %XX. The server has
// its own URL and time code on purpose (see decode in api_server.cpp): were
// it to share the library's, a bug there would agree with itself in tests.
std::string encode(std::string_view text) {
  static constexpr std::string_view kHex = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4U];
      out += kHex[u & 0xFU];
    }
  }
  return out;
}

json null_address() {
  return {{"city", nullptr}, {"country", nullptr}, {"line1", nullptr}, {"line2", nullptr},
          {"postal_code", nullptr}, {"state", nullptr}};
}

// The charge's created-time filter: created=<t> or created[gt|gte|lt|lte]=<t>.
struct CreatedFilter {
  std::optional<std::int64_t> gt, gte, lt, lte;
  [[nodiscard]] bool keeps(std::int64_t t) const {
    return (!gt || t > *gt) && (!gte || t >= *gte) && (!lt || t < *lt) && (!lte || t <= *lte);
  }
};

CreatedFilter created_filter(const Params& query) {
  CreatedFilter f;
  for (const auto& [k, v] : query) {
    if (k == "created") {
      f.gte = f.lte = integer(k, v);
    } else if (k == "created[gt]") {
      f.gt = integer(k, v);
    } else if (k == "created[gte]") {
      f.gte = integer(k, v);
    } else if (k == "created[lt]") {
      f.lt = integer(k, v);
    } else if (k == "created[lte]") {
      f.lte = integer(k, v);
    } else if (k.rfind("created[", 0) == 0) {
      throw BadParameter("Received unknown parameter: " + k);
    }
  }
  return f;
}

json user(std::size_t index) {
  const auto n = static_cast<std::int64_t>(index % 7);
  const std::string login = "octo-user-" + std::to_string(n);
  return {{"login", login},
          {"id", 583231 + n},
          {"node_id", "MDQ6VXNlcjU4MzIz" + std::to_string(n)},
          {"avatar_url", "https://avatars.githubusercontent.com/u/" + std::to_string(583231 + n) + "?v=4"},
          {"url", "https://api.github.com/users/" + login},
          {"html_url", "https://github.com/" + login},
          {"type", "User"},
          {"site_admin", false}};
}

}  // namespace

std::string iso8601(std::int64_t unix_seconds) {
  const auto t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::array<char, 32> buf{};
  const auto n = std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buf.data(), n);
}

std::int64_t parse_iso8601(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.fff](Z|+00:00)
  const auto bad = [&] { return BadParameter("Invalid ISO 8601 timestamp: " + std::string(text)); };
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != ' ') ||
      text[13] != ':' || text[16] != ':') {
    throw bad();
  }
  const auto field = [&](std::size_t pos, std::size_t len) {
    int v = 0;
    const auto [ptr, ec] = std::from_chars(text.data() + pos, text.data() + pos + len, v);
    if (ec != std::errc{} || ptr != text.data() + pos + len) throw bad();
    return v;
  };
  std::size_t rest = 19;
  if (text[rest] == '.') {
    ++rest;
    while (rest < text.size() && text[rest] >= '0' && text[rest] <= '9') ++rest;
  }
  const std::string_view zone = text.substr(rest);
  if (zone != "Z" && zone != "+00:00") throw bad();
  using namespace std::chrono;
  const year_month_day date{year{field(0, 4)}, month{static_cast<unsigned>(field(5, 2))},
                            day{static_cast<unsigned>(field(8, 2))}};
  if (!date.ok()) throw bad();
  const std::int64_t h = field(11, 2);
  const std::int64_t m = field(14, 2);
  const std::int64_t s = field(17, 2);
  if (h > 23 || m > 59 || s > 59) throw bad();
  return sys_days{date}.time_since_epoch() / seconds{1} + h * 3600 + m * 60 + s;
}

bool is_github_issues_path(std::string_view path) {
  // /repos/<owner>/<repo>/issues or /repositories/<id>/issues
  const auto parts = [&] {
    std::vector<std::string_view> out;
    std::size_t pos = 1;
    while (pos <= path.size()) {
      const auto slash = path.find('/', pos);
      out.push_back(path.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos));
      if (slash == std::string_view::npos) break;
      pos = slash + 1;
    }
    return out;
  }();
  if (path.empty() || path[0] != '/') return false;
  if (parts.size() == 4 && parts[0] == "repos" && !parts[1].empty() && !parts[2].empty() && parts[3] == "issues") {
    return true;
  }
  return parts.size() == 3 && parts[0] == "repositories" && !parts[1].empty() && parts[2] == "issues";
}

json stripe_charge(const Dataset& data, std::size_t index) {
  const json o = data.object(index);
  const std::string id = o.at("id");
  const std::string suffix = id.substr(3);
  const std::string status = o.at("status");
  const auto amount = o.at("amount").get<std::int64_t>();
  const bool failed = status == "failed";
  return {
      {"id", id},
      {"object", "charge"},
      {"amount", amount},
      {"amount_captured", status == "succeeded" ? amount : 0},
      {"amount_refunded", 0},
      {"application", nullptr},
      {"application_fee", nullptr},
      {"application_fee_amount", nullptr},
      {"balance_transaction", failed ? json(nullptr) : json("txn_" + suffix)},
      {"billing_details",
       {{"address", null_address()}, {"email", o.at("receipt_email")}, {"name", nullptr}, {"phone", nullptr},
        {"tax_id", nullptr}}},
      {"calculated_statement_descriptor", failed ? json(nullptr) : json("WEBHOOKDB")},
      {"captured", status == "succeeded"},
      {"created", data.created(index)},
      {"currency", o.at("currency")},
      {"customer", o.at("customer")},
      {"description", o.at("description")},
      {"disputed", false},
      {"failure_balance_transaction", nullptr},
      {"failure_code", failed ? json("card_declined") : json(nullptr)},
      {"failure_message", failed ? json("Your card was declined.") : json(nullptr)},
      {"fraud_details", json::object()},
      {"livemode", false},
      {"metadata", o.at("metadata")},
      {"on_behalf_of", nullptr},
      {"outcome",
       {{"network_status", failed ? "declined_by_network" : "approved_by_network"},
        {"reason", failed ? json("generic_decline") : json(nullptr)},
        {"risk_level", "normal"},
        {"seller_message", failed ? "The bank did not return any further details with this decline."
                                  : "Payment complete."},
        {"type", failed ? "issuer_declined" : "authorized"}}},
      {"paid", !failed},
      {"payment_intent", "pi_" + suffix},
      {"payment_method", "pm_" + suffix},
      {"payment_method_details",
       {{"card",
         {{"brand", "visa"}, {"country", "US"}, {"exp_month", 8}, {"exp_year", 2030}, {"funding", "credit"},
          {"last4", "4242"}, {"network", "visa"}}},
        {"type", "card"}}},
      {"receipt_email", o.at("receipt_email")},
      {"receipt_number", nullptr},
      {"receipt_url", "https://pay.stripe.com/receipts/payment/" + suffix},
      {"refunded", false},
      {"refunds",
       {{"object", "list"}, {"data", json::array()}, {"has_more", false},
        {"url", "/v1/charges/" + id + "/refunds"}}},
      {"review", nullptr},
      {"shipping", nullptr},
      {"source_transfer", nullptr},
      {"statement_descriptor", nullptr},
      {"statement_descriptor_suffix", nullptr},
      {"status", status},
      {"transfer_data", nullptr},
      {"transfer_group", nullptr},
  };
}

json github_issue(const Dataset& data, std::size_t index, std::string_view base_url) {
  const json o = data.object(index);
  const auto number = static_cast<std::int64_t>(index) + 1;
  const std::string repo = std::string(base_url) + "/repos/octocat/Hello-World";
  const std::string url = repo + "/issues/" + std::to_string(number);
  const std::string html = "https://github.com/octocat/Hello-World/issues/" + std::to_string(number);
  const bool closed = index % 4 == 3;
  const std::int64_t updated = data.updated(index);
  std::string title = o.at("description").get<std::string>().substr(0, 48);
  title = title.substr(0, title.rfind(' '));
  json labels = json::array();
  if (index % 3 == 0) {
    labels.push_back({{"id", 208045946}, {"node_id", "MDU6TGFiZWwyMDgwNDU5NDY="},
                      {"url", repo + "/labels/bug"}, {"name", "bug"}, {"description", "Something isn't working"},
                      {"color", "f29513"}, {"default", true}});
  }
  json issue = {
      {"id", kIssueIdBase + static_cast<std::int64_t>(index)},
      {"node_id", "MDU6SXNzdWUx" + std::to_string(number)},
      {"url", url},
      {"repository_url", repo},
      {"labels_url", url + "/labels{/name}"},
      {"comments_url", url + "/comments"},
      {"events_url", url + "/events"},
      {"html_url", html},
      {"number", number},
      {"state", closed ? "closed" : "open"},
      {"state_reason", closed ? json("completed") : json(nullptr)},
      {"title", title},
      {"body", o.at("description")},
      {"user", user(index)},
      {"labels", labels},
      {"assignee", nullptr},
      {"assignees", json::array()},
      {"milestone", nullptr},
      {"locked", false},
      {"active_lock_reason", nullptr},
      {"comments", static_cast<std::int64_t>(index % 4)},
      {"closed_at", closed ? json(iso8601(updated)) : json(nullptr)},
      {"created_at", iso8601(data.created(index))},
      {"updated_at", iso8601(updated)},
      {"closed_by", nullptr},
      {"author_association", "CONTRIBUTOR"},
  };
  if (index % 5 == 4) {
    const std::string pr = std::to_string(number);
    issue["pull_request"] = {{"url", repo + "/pulls/" + pr},
                             {"html_url", "https://github.com/octocat/Hello-World/pull/" + pr},
                             {"diff_url", "https://github.com/octocat/Hello-World/pull/" + pr + ".diff"},
                             {"patch_url", "https://github.com/octocat/Hello-World/pull/" + pr + ".patch"},
                             {"merged_at", nullptr}};
  }
  return issue;
}

Page stripe_charges(const Dataset& data, const Params& query) {
  const auto limit = static_cast<std::size_t>(bounded(query, "limit", {.fallback = 10, .low = 1, .high = 100}));
  const CreatedFilter filter = created_filter(query);
  // Newest first: object size()-1 down to 0; starting_after=<id> continues below it.
  std::size_t end = data.size();  // one past the next index to look at, counting down
  if (const auto after = param(query, "starting_after"); after && !after->empty()) {
    const auto index = data.index_of(*after);
    if (!index) {
      Page p;
      p.status = 400;
      p.body = json{{"error",
                     {{"code", "resource_missing"}, {"message", "No such charge: '" + *after + "'"},
                      {"param", "starting_after"}, {"type", "invalid_request_error"}}}}
                   .dump();
      return p;
    }
    end = *index;
  }
  json items = json::array();
  bool more = false;
  for (std::size_t i = end; i > 0; --i) {
    if (!filter.keeps(data.created(i - 1))) continue;
    if (items.size() == limit) {
      more = true;
      break;
    }
    items.push_back(stripe_charge(data, i - 1));
  }
  Page p;
  p.items = items.size();
  p.body = json{{"object", "list"}, {"data", std::move(items)}, {"has_more", more}, {"url", "/v1/charges"}}.dump();
  return p;
}

Page github_issues(const Dataset& data, const Params& query, std::string_view base_url) {
  const auto per_page = bounded(query, "per_page", {.fallback = 30, .low = 1, .high = 100});
  const auto page = bounded(query, "page", {.fallback = 1, .low = 1, .high = 1'000'000});
  const std::string state = param(query, "state").value_or("open");
  const std::string sort = param(query, "sort").value_or("created");
  const std::string direction = param(query, "direction").value_or("desc");
  if (state != "open" && state != "closed" && state != "all") throw BadParameter("state: open, closed or all");
  if (sort != "created" && sort != "updated") throw BadParameter("sort: created or updated");
  if (direction != "asc" && direction != "desc") throw BadParameter("direction: asc or desc");
  std::optional<std::int64_t> since;
  if (const auto s = param(query, "since")) since = parse_iso8601(*s);

  std::vector<std::size_t> matching;
  for (std::size_t i = 0; i < data.size(); ++i) {
    const bool closed = i % 4 == 3;
    if ((state == "open" && closed) || (state == "closed" && !closed)) continue;
    if (since && data.updated(i) < *since) continue;
    matching.push_back(i);
  }
  if (sort == "updated") {
    std::stable_sort(matching.begin(), matching.end(),
                     [&](std::size_t a, std::size_t b) { return data.updated(a) < data.updated(b); });
  }
  if (direction == "desc") std::reverse(matching.begin(), matching.end());

  const auto total = static_cast<std::int64_t>(matching.size());
  const std::int64_t last = std::max<std::int64_t>(1, (total + per_page - 1) / per_page);
  json items = json::array();
  for (std::int64_t k = (page - 1) * per_page; k < std::min(total, page * per_page); ++k) {
    items.push_back(github_issue(data, matching[static_cast<std::size_t>(k)], base_url));
  }
  // Like GitHub: the links go to /repositories/<id>/issues, with the request's
  // parameters (page replaced) in their order.
  const auto link = [&](std::int64_t n, std::string_view rel) {
    std::string url = std::string(base_url) + "/repositories/" + std::to_string(kRepositoryId) + "/issues?";
    for (const auto& [k, v] : query) {
      if (k != "page") url += encode(k) + "=" + encode(v) + "&";
    }
    return "<" + url + "page=" + std::to_string(n) + ">; rel=\"" + std::string(rel) + "\"";
  };
  std::vector<std::string> links;
  if (page > 1) links.push_back(link(std::min(page - 1, last), "prev"));
  if (page < last) {
    links.push_back(link(page + 1, "next"));
    links.push_back(link(last, "last"));
  }
  if (page > 1) links.push_back(link(1, "first"));
  Page p;
  p.items = items.size();
  p.body = items.dump();
  if (!links.empty()) {
    std::string value;
    for (const auto& l : links) value += (value.empty() ? "" : ", ") + l;
    p.headers.emplace_back("Link", value);
  }
  return p;
}

}  // namespace webhookdb::tools::shapes
