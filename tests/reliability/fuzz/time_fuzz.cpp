// Time parsing (ISO-8601, RFC 2822, HTTP dates): no crash or UB on any input,
// and every timestamp parsed (in years 1..9999) formats to text that parses
// back to the same instant.

#include <cstdint>
#include <string>

#include "reliability/fuzz/fuzz_support.hpp"
#include "webhookdb/time.hpp"

namespace {

void round_trip(const webhookdb::Timestamp& t, const std::string& input) {
  using namespace std::chrono;
  const auto days = floor<std::chrono::days>(t);
  const year_month_day ymd{days};
  if (ymd.year() < year(1) || ymd.year() > year(9999)) return;
  const std::string text = webhookdb::format_timestamp(t);
  const auto back = webhookdb::parse_timestamp(text);
  FUZZ_CHECK(back.has_value(), "formatted timestamp does not parse: " + text + " (from " +
                                   webhookdb::test::printable(input) + ")");
  FUZZ_CHECK(*back == t, "round trip changed the instant: " + text + " (from " + webhookdb::test::printable(input) + ")");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(webhookdb::test::as_text(data, size));
  if (auto t = webhookdb::parse_timestamp(input)) round_trip(*t, input);
  if (auto t = webhookdb::parse_http_date(input)) round_trip(*t, input);
  return 0;
}
