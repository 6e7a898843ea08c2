// Retry-After parsing (delta-seconds or HTTP date): no crash or UB (overflow)
// on any input, never a negative wait, delta-seconds read exactly, and the
// wait an HttpError carries is the wait its header asks for.

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>

#include "reliability/fuzz/fuzz_support.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/retry_after.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(webhookdb::test::as_text(data, size));
  const webhookdb::Timestamp now{std::chrono::seconds(1'700'000'000)};
  const auto wait = webhookdb::parse_retry_after(input, now);
  if (wait) FUZZ_CHECK(wait->count() >= 0, "negative wait for " + webhookdb::test::printable(input));

  // Only digits (at most 9, so no overflow here): exactly that many seconds, or refused as too long.
  if (!input.empty() && input.size() <= 9 &&
      std::all_of(input.begin(), input.end(), [](unsigned char c) { return std::isdigit(c) != 0; })) {
    if (wait) FUZZ_CHECK(wait->count() == std::stoll(input) * 1000, "delta-seconds misread: " + input);
  }
  // The same through an HttpError's headers.
  const webhookdb::HttpError error(429, "GET", "https://api.example.test/", "", {{"Retry-After", input}});
  FUZZ_CHECK(webhookdb::retry_after(error, now) == wait, "HttpError disagrees with the header");
  // An HTTP date is parsed the same way on its own.
  (void)webhookdb::parse_http_date(input);
  return 0;
}
