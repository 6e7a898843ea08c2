#pragma once
// The API server's dataset in the shapes of two real APIs, for the examples
// named after them (examples/stripe_charges, examples/github_issues):
//
//   GET /stripe/v1/charges?limit=N&starting_after=<id>&created[gte]=<unix>
//       Stripe's list (https://docs.stripe.com/api/charges/list): newest
//       first, {"object":"list","data":[...],"has_more":b,"url":"/v1/charges"};
//       limit 1..100 (default 10), created[gt|gte|lt|lte] or created=<unix>.
//       A charge has the fields of Stripe's published fixture (openapi/
//       fixtures3.json), `created` and no `updated`.
//   GET /repos/<owner>/<repo>/issues?state=&per_page=&page=&since=&sort=&direction=
//   GET /repositories/<id>/issues?...   (where GitHub's Link headers point)
//       GitHub's list (https://docs.github.com/en/rest/issues/issues): a JSON
//       array of issues (every 5th a pull request, with "pull_request"), and
//       Link: <...&page=2>; rel="next", <...&page=N>; rel="last" (and
//       rel="prev"/"first" after the first page); per_page 1..100 (default
//       30); since=<ISO-8601> keeps issues whose updated_at is at or after it;
//       state open (default), closed or all; sort created (default) or
//       updated; direction desc (default) or asc.
// Object i of the dataset is charge Dataset::id(i) created at its `created`,
// and issue number i + 1 with id kIssueIdBase + i, created at the same time
// and updated_at = the object's `updated` (so ApiServer::touch moves it).

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "api_server/dataset.hpp"

namespace webhookdb::tools::shapes {

using Params = std::vector<std::pair<std::string, std::string>>;

// A malformed or out-of-range parameter: the server answers 400 with it.
struct BadParameter : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct Page {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::size_t items = 0;
};

inline constexpr std::string_view kStripeChargesPath = "/stripe/v1/charges";
inline constexpr std::int64_t kIssueIdBase = 1'000'000'000;
// octocat/Hello-World's repository id.
inline constexpr std::int64_t kRepositoryId = 1296269;

[[nodiscard]] bool is_github_issues_path(std::string_view path);

[[nodiscard]] nlohmann::json stripe_charge(const Dataset& data, std::size_t index);
[[nodiscard]] nlohmann::json github_issue(const Dataset& data, std::size_t index, std::string_view base_url);

// `base_url`: "http://host:port", for the URLs inside issues and Link headers.
[[nodiscard]] Page stripe_charges(const Dataset& data, const Params& query);
[[nodiscard]] Page github_issues(const Dataset& data, const Params& query, std::string_view base_url);

// "2020-09-13T12:26:40Z" for unix seconds, and back (Z or +00:00, optional
// fraction, which is dropped); BadParameter when it is not such a time.
[[nodiscard]] std::string iso8601(std::int64_t unix_seconds);
[[nodiscard]] std::int64_t parse_iso8601(std::string_view text);

}  // namespace webhookdb::tools::shapes
