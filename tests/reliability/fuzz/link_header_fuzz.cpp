// Link header parsing and the URL helpers pagination builds on: no crash or UB
// on any input, lower-cased rels and parameter names, query values that round
// trip through url_encode, secret-looking query values always redacted.
//
// Input: a Link header value (also used as a URL, a reference and a query value).

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>

#include "reliability/fuzz/fuzz_support.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/pagination.hpp"
#include "webhookdb/url.hpp"

namespace {

namespace pagination = webhookdb::pagination;
namespace url = webhookdb::url;
using webhookdb::test::printable;

bool lower(const std::string& s) {
  return std::none_of(s.begin(), s.end(), [](unsigned char c) { return std::isupper(c) != 0; });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(webhookdb::test::as_text(data, size));
  const std::string base = "https://api.example.test/v1/items?limit=10";

  for (const auto& link : pagination::parse_link_header(input)) {
    for (const auto& [name, value] : link.params) FUZZ_CHECK(lower(name), "parameter name not lower-cased: " + printable(name));
    for (const auto& rel : link.rels()) FUZZ_CHECK(lower(rel), "rel not lower-cased: " + printable(rel));
  }
  const webhookdb::Headers headers = {{"Link", input}, {"link", "<" + input + ">; rel=next"}};
  (void)pagination::find_link(headers, base, "next");
  (void)pagination::find_link(headers, input, "last");

  // The reference and URL helpers never crash on any text.
  (void)pagination::resolve_url(base, input);
  (void)pagination::origin_of(input);
  (void)pagination::query_param(input, "page");
  (void)pagination::set_query_param(input, "page", "2");
  (void)webhookdb::redact_url(input);

  // A value set in a query comes back unchanged.
  const std::string with = pagination::set_query_param(base, "cursor", input);
  FUZZ_CHECK(pagination::query_param(with, "cursor") == input, "cursor did not round trip: " + printable(with));
  FUZZ_CHECK(pagination::query_param(with, "limit") == std::optional<std::string>("10"), "limit lost: " + printable(with));
  const std::string appended = pagination::with_query(base, {{"k", input}, {input, "v"}});
  FUZZ_CHECK(pagination::query_param(appended, "k") == input, "with_query value did not round trip");
  // with_query appends and query_param reads the first: a name already in the
  // URL ("limit", or the "k" just added) keeps its earlier value.
  if (!input.empty() && input != "k" && !pagination::query_param(base, input)) {
    FUZZ_CHECK(pagination::query_param(appended, input) == std::optional<std::string>("v"),
               "with_query name did not round trip: " + printable(appended));
  }
  const std::string encoded = url::percent_encode(input);
  FUZZ_CHECK(std::all_of(encoded.begin(), encoded.end(),
                         [](unsigned char c) {
                           return std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~' || c == '%';
                         }),
             "url_encode left a reserved character: " + printable(encoded));

  // A secret in the query is always redacted, whatever it holds.
  const std::string secret_url = pagination::with_query(base, {{"api_key", input}, {"x", "1"}});
  const std::string redacted = webhookdb::redact_url(secret_url);
  FUZZ_CHECK(pagination::query_param(redacted, "api_key") == std::optional<std::string>("REDACTED"),
             "api_key not redacted: " + printable(redacted));
  FUZZ_CHECK(webhookdb::redact_url(redacted) == redacted, "redact_url is not idempotent: " + printable(redacted));
  return 0;
}
