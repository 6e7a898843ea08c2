// Issue 16, item 2: the timestamp and date converters against PostgreSQL's own
// parse. For every string of a corpus of edge cases, either ours refuses it
// (InvalidInput) or the server reads the same instant (date); and whatever the
// server refuses, ours refuses too. Our output text must also read back on the
// server as that same instant.

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "pg/values.hpp"
#include "support/pg_test_env.hpp"
#include "webhookdb/column.hpp"
#include "webhookdb/converters.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/pg/connection_pool.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb {
namespace {

using nlohmann::json;

// The converter's output, or nullopt when it refuses with InvalidInput.
std::optional<std::string> ours(const Converter& c, const json& value) {
  const json resource = json::object();
  try {
    return c.fn(value, ConvertContext{resource, nullptr, nullptr, "col"}).get<std::string>();
  } catch (const InvalidInput&) {
    return std::nullopt;
  }
}

class TimestampCorpus : public ::testing::Test {
 protected:
  void SetUp() override {
    pg::Config config;
    config.url = test::database_url();
    config.pool_size = 1;
    pool_ = std::make_unique<pg::ConnectionPool>(config);
  }

  // The server's answer to `sql` with $1 = text, or nullopt when it refuses
  // the value (any other failure, e.g. a lost connection, fails the test).
  std::optional<std::string> server(const std::string& sql, const std::string& text) {
    try {
      auto r = pool_->exec(sql, {text});
      return r.rows.at(0).at(0);
    } catch (const Error& e) {
      const std::string what = e.what();
      const bool refused = what.find("out of range") != std::string::npos ||
                           what.find("invalid input syntax") != std::string::npos ||
                           what.find("not recognized") != std::string::npos;
      EXPECT_TRUE(refused) << "unexpected server error for '" << text << "': " << what;
      return std::nullopt;
    }
  }

  // Microseconds since 1970 as exact decimal text (past 294247 they leave
  // int64). Day and time of day apart: extract(epoch) goes through a double
  // for far instants, and timestamptz - timestamptz wraps past int64.
  std::optional<std::string> server_micros(const std::string& text) {
    return server(
        "SELECT ((u::date - date '1970-01-01')::numeric * 86400000000 + extract(epoch FROM u::time) * "
        "1000000)"
        "::numeric(40,0)::text FROM (SELECT $1::timestamptz AT TIME ZONE 'UTC' AS u) AS x",
        text);
  }
  std::optional<std::string> server_micros_sql(const std::string& expr, const std::string& text) {
    return server(
        "SELECT ((u::date - date '1970-01-01')::numeric * 86400000000 + extract(epoch FROM u::time) * "
        "1000000)"
        "::numeric(40,0)::text FROM (SELECT " +
            expr + " AT TIME ZONE 'UTC' AS u) AS x",
        text);
  }

  std::unique_ptr<pg::ConnectionPool> pool_;
};

std::vector<std::string> timestamp_corpus() {
  std::vector<std::string> c;
  // Years at the edges: 4714 BC (PostgreSQL's first), 1, 9999, 10000, the
  // ends of std::chrono::year (32767) and of 16 bits, the issue's 70000 and
  // 67560, the end of int64 microseconds (294247) and of PostgreSQL (294276).
  for (const char* y : {"0001", "0000", "9999", "10000", "32767", "32768", "65535", "65536", "67560", "70000",
                        "070000", "294246", "294247", "294276", "294277", "1000000", "5874897"}) {
    const std::string year = y;
    c.push_back(year + "-01-01T00:00:00Z");
    c.push_back(year + "-12-31T23:59:59.999999Z");
    c.push_back(year + "-02-29T12:00:00Z");
    c.push_back(year + "-06-15 08:30:00+05:30");
    c.push_back(year + "-12-31T23:59:59.9999999Z");
    c.push_back(year + "-01-01");
  }
  for (const char* y : {"4714", "4713", "0001", "0002", "0044"}) {
    const std::string year = y;
    c.push_back(year + "-11-24T00:00:00Z BC");
    c.push_back(year + "-11-23T23:59:59.999999Z BC");
    c.push_back(year + "-11-24T00:00:00+01 BC");
    c.push_back(year + "-11-23T23:00:00-01 BC");
    c.push_back(year + "-01-01 BC");
    c.push_back(year + "-12-31T23:59:59.9999999Z BC");
  }
  c.insert(c.end(), {"294247-01-10T04:00:54.775807Z", "294247-01-10T04:00:54.775808Z",
                     "294276-12-31T23:59:59-01", "294276-12-31T23:59:59+01", "-0001-01-01T00:00:00Z",
                     "+2020-01-01T00:00:00Z", "0000-12-31T18:10:00-05:50", "0001-01-01T00:00:00+01:00"});
  // Months and days.
  for (const char* d : {"2020-00-10", "2020-13-01", "2020-04-31", "2020-01-32", "2020-02-30", "2021-02-29",
                        "2000-02-29", "1900-02-29", "2100-02-29", "2400-02-29", "2020-01-00", "2020-1-1"}) {
    c.push_back(std::string(d) + "T00:00:00Z");
    c.push_back(d);
  }
  // Times of day.
  for (const char* t :
       {"24:00:00", "24:00:00.0000001", "24:00:00.000001", "24:00:01", "24:01:00", "24:30:00", "25:00:00",
        "23:60:00", "23:59:60", "23:59:60.5", "23:59:60.0000001", "23:59:60.9999999", "23:59:61", "23:58:60",
        "00:00", "23:59", "7:00:00", "00:00:00.", "00:00:00,5"}) {
    c.push_back("2020-12-31T" + std::string(t) + "Z");
    c.push_back("2020-02-28 " + std::string(t) + "+01:00");
  }
  // Fractions of 1 to 10 digits, with values that round up and carry.
  for (int n = 1; n <= 10; ++n) {
    const std::string nines(static_cast<std::size_t>(n), '9');
    const std::string half = std::string(static_cast<std::size_t>(n - 1), '0') + "5";
    const std::string half_odd = n >= 2 ? std::string(static_cast<std::size_t>(n - 2), '0') + "15" : "1";
    const std::string digits = std::string("1234567891").substr(0, static_cast<std::size_t>(n));
    for (const auto& f : {nines, half, half_odd, digits}) {
      c.push_back("2020-12-31T23:59:59." + f + "Z");
      c.push_back("1999-12-31 23:59:59." + f + "+00");
      c.push_back("2020-01-01T00:00:00." + f + "-01:00");
    }
  }
  // Offsets and zones at and past the limits.
  for (const char* z :
       {"Z",      "z",         "+00",    "-00",    "+15",       "+15:59",    "+15:59:59", "+16",
        "+16:00", "-15:59:59", "-16:00", "+99:99", "+14:60",    "+05:30:60", "+0530",     "+053015",
        "+5",     "+05:3",     " UTC",   " utc",   " GMT",      " UT",       " EST",      " edt",
        " PST",   " XYZ",      "",       " ",      "+00:00 BC", " bc"}) {
    c.push_back("2020-01-01T00:00:00" + std::string(z));
  }
  // Separators, RFC 2822, asctime and garbage.
  c.insert(c.end(),
           {"2020-01-01t00:00:00Z", "2020-01-01X00:00:00Z", "2020-01-01  00:00:00Z",
            "Thu, 30 Jul 2016 21:12:33 +0000", "30 Jul 2016 21:12:33 GMT", "Thu, 30 Jul 16 21:12:33 -0700",
            "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
            "Thu, 31 Feb 2016 21:12:33 +0000", "Thu, 30 Jul 2016 24:30:00 +0000",
            "Thu, 30 Jul 2016 21:12:33 +9999", "Thu, 30 Jul 99999 21:12:33 +0000", "", "yesterday",
            "2020-01-01T00:00:00Z trailing"});
  return c;
}

// The issue's strings, each with what PostgreSQL makes of it (nullopt: refused).
TEST_F(TimestampCorpus, TheIssuesStringsMeanWhatPostgresMeans) {
  const auto time = converters::time();
  EXPECT_EQ(ours(time, "070000-01-01T00:00:00Z"), "70000-01-01T00:00:00Z");
  EXPECT_EQ(server_micros("070000-01-01T00:00:00Z"), server_micros("70000-01-01T00:00:00Z"));
  EXPECT_EQ(ours(time, "67560-01-01T00:00:00Z"), "67560-01-01T00:00:00Z");
  EXPECT_EQ(ours(time, "2020-01-01T24:30:00Z"), std::nullopt);
  EXPECT_EQ(server_micros("2020-01-01T24:30:00Z"), std::nullopt);
  EXPECT_EQ(ours(time, "2020-01-01T00:00:00+99:99"), std::nullopt);
  EXPECT_EQ(server_micros("2020-01-01T00:00:00+99:99"), std::nullopt);
  EXPECT_EQ(ours(time, "2020-01-01T00:00:00.0000015Z"), "2020-01-01T00:00:00.000002Z");
  EXPECT_EQ(server_micros("2020-01-01T00:00:00.0000015Z"), "1577836800000002");
  EXPECT_EQ(ours(converters::date(), "12345-06-07"), "12345-06-07");
  EXPECT_EQ(server("SELECT $1::date::text", "12345-06-07"), "12345-06-07");
}

TEST_F(TimestampCorpus, TimeConverterAgreesWithTimestamptz) {
  const auto time = converters::time();
  const auto corpus = timestamp_corpus();
  int agreed = 0;
  int both_refused = 0;
  int only_ours_refused = 0;
  for (const auto& text : corpus) {
    const auto mine = ours(time, text);
    const auto theirs = server_micros(text);
    if (!theirs) {
      EXPECT_EQ(mine, std::nullopt) << "PostgreSQL refuses '" << text << "', ours accepts it as " << *mine;
      ++both_refused;
      continue;
    }
    if (!mine) {
      ++only_ours_refused;
      continue;
    }
    const auto t = parse_timestamp(*mine);
    ASSERT_TRUE(t) << "our output does not parse: " << *mine;
    EXPECT_EQ(std::to_string(t->time_since_epoch().count()), *theirs) << "'" << text << "' became " << *mine;
    // What we write must read back on the server as the same instant.
    EXPECT_EQ(server_micros(*mine), theirs) << "format_timestamp text " << *mine;
    EXPECT_EQ(server_micros(pg::values::timestamp_text(*t)), theirs)
        << "COPY text " << pg::values::timestamp_text(*t);
    ++agreed;
  }
  EXPECT_GE(corpus.size(), 300U);
  EXPECT_GE(agreed, 150);
  std::cout << corpus.size() << " strings: " << agreed << " same instant, " << both_refused
            << " refused by both, " << only_ours_refused << " refused only by ours\n";
}

TEST_F(TimestampCorpus, DateConverterAgreesWithDate) {
  const auto date = converters::date();
  int agreed = 0;
  for (const auto& text : timestamp_corpus()) {
    // A date alone is what `date` reads; a timestamp gives the UTC date of the
    // instant, as the converter's SQL form computes it.
    const bool has_time = text.find(':') != std::string::npos;
    const auto theirs = has_time ? server("SELECT ($1::timestamptz AT TIME ZONE 'UTC')::date::text", text)
                                 : server("SELECT $1::date::text", text);
    const auto mine = ours(date, text);
    if (!theirs) {
      EXPECT_EQ(mine, std::nullopt) << "PostgreSQL refuses '" << text << "', ours accepts it as " << *mine;
      continue;
    }
    if (!mine) continue;
    EXPECT_EQ(*mine, *theirs) << "'" << text << "'";
    EXPECT_EQ(server("SELECT $1::date::text", *mine), theirs) << "our date text " << *mine;
    ++agreed;
  }
  EXPECT_GE(agreed, 100);
}

TEST_F(TimestampCorpus, UnixConvertersAgreeWithToTimestamp) {
  const auto unix_s = converters::unix_timestamp();
  const auto unix_ms = converters::unix_timestamp_ms();
  const std::vector<json> numbers = {0,
                                     1469913153,
                                     1469913153.5,
                                     -1.5,
                                     0.0000005,
                                     0.0000015,
                                     1.0000005,
                                     -0.0000005,
                                     946684800.0000005,
                                     -210866803200.0,  // 4714-11-24 BC, PostgreSQL's first instant
                                     -210866803200.000001,
                                     -210866803201.0,
                                     9223371331199.0,
                                     9224318015999.0,
                                     9224318016000.0,
                                     9.2e12,
                                     9.3e12,
                                     -9.2e12,
                                     1e308,
                                     -1e308,
                                     std::numeric_limits<std::int64_t>::max(),
                                     std::numeric_limits<std::int64_t>::min(),
                                     std::numeric_limits<std::uint64_t>::max(),
                                     "1469913153",
                                     " 12.25 ",
                                     "12abc",
                                     4.0e11,
                                     1e-300};
  int agreed = 0;
  for (const auto& n : numbers) {
    for (const bool ms : {false, true}) {
      const std::string text = n.is_string() ? n.get<std::string>() : n.dump();
      const auto theirs = server_micros_sql(
          ms ? "to_timestamp($1::double precision / 1000)" : "to_timestamp($1::double precision)", text);
      const auto mine = ours(ms ? unix_ms : unix_s, n);
      if (!theirs) {
        EXPECT_EQ(mine, std::nullopt) << "PostgreSQL refuses " << text << (ms ? " ms" : " s");
        continue;
      }
      if (!mine) continue;
      const auto t = parse_timestamp(*mine);
      ASSERT_TRUE(t) << *mine;
      EXPECT_EQ(std::to_string(t->time_since_epoch().count()), *theirs) << text << (ms ? " ms" : " s");
      ++agreed;
    }
  }
  EXPECT_GE(agreed, 20);
}

}  // namespace
}  // namespace webhookdb
