// Time parsing and the built-in converters.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support.hpp"
#include "support/column_type_cases.hpp"
#include "webhookdb/column.hpp"
#include "webhookdb/converters.hpp"
#include "webhookdb/testing/test_harness.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

json convert(const Converter& c, const json& value) {
  const json resource = json::object();
  return c.fn(value, ConvertContext{resource, nullptr, nullptr, "col"});
}

std::string iso(std::string_view text) {
  auto t = parse_timestamp(text);
  return t ? format_timestamp(*t) : std::string("(nullopt)");
}

TEST(TimeParsing, Iso8601InUtc) {
  EXPECT_EQ(iso("2022-01-01T00:00:00Z"), "2022-01-01T00:00:00Z");
  EXPECT_EQ(iso("2022-01-01 12:34:56Z"), "2022-01-01T12:34:56Z");
  EXPECT_EQ(iso("2022-01-01T12:34Z"), "2022-01-01T12:34:00Z");
}

TEST(TimeParsing, Iso8601WithOffsets) {
  EXPECT_EQ(iso("2022-01-01T02:00:00+02:00"), "2022-01-01T00:00:00Z");
  EXPECT_EQ(iso("2021-12-31T18:30:00-0530"), "2022-01-01T00:00:00Z");
  EXPECT_EQ(iso("2022-01-01T09:00:00+09"), "2022-01-01T00:00:00Z");
}

TEST(TimeParsing, Iso8601Fractions) {
  EXPECT_EQ(iso("2022-01-01T00:00:00.5Z"), "2022-01-01T00:00:00.5Z");
  EXPECT_EQ(iso("2022-01-01T00:00:00.123456Z"), "2022-01-01T00:00:00.123456Z");
  EXPECT_EQ(iso("2022-01-01T00:00:00.123456789Z"), "2022-01-01T00:00:00.123457Z")
      << "rounded, as PostgreSQL does";
  const auto t = parse_timestamp("2022-01-01T00:00:00.250+01:00");
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, test::ts("2021-12-31T23:00:00Z") + 250ms);
}

TEST(TimeFormatting, PadsEveryFieldAndTrimsTheFraction) {
  using std::chrono::microseconds;
  const Timestamp epoch{};
  EXPECT_EQ(format_timestamp(epoch), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_timestamp(epoch + microseconds(1)), "1970-01-01T00:00:00.000001Z");
  EXPECT_EQ(format_timestamp(epoch + microseconds(120'000)), "1970-01-01T00:00:00.12Z");
  EXPECT_EQ(format_timestamp(epoch - microseconds(1)), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(format_timestamp(test::ts("0042-03-04T05:06:07Z")), "0042-03-04T05:06:07Z");
  EXPECT_EQ(format_timestamp(test::ts("9999-12-31T23:59:59.5Z")), "9999-12-31T23:59:59.5Z");
  // The ends of the range, without overflowing (UBSan watches) or wrapping the year.
  EXPECT_EQ(format_timestamp(Timestamp::max()), "294247-01-10T04:00:54.775807Z");
  EXPECT_EQ(format_timestamp(Timestamp::min()), "290309-12-21T19:59:05.224192Z BC");
  // Every output parses back to the same instant.
  std::uint64_t state = 7;
  for (int i = 0; i < 2000; ++i) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    const Timestamp t =
        epoch + microseconds(static_cast<std::int64_t>(state >> 14U) % 253'402'300'799'000'000LL);
    const std::string text = format_timestamp(t);
    ASSERT_EQ(parse_timestamp(text), t) << text;
  }
}

TEST(TimeParsing, Rfc2822) {
  EXPECT_EQ(iso("Thu, 30 Jul 2016 21:12:33 +0000"), "2016-07-30T21:12:33Z");
  EXPECT_EQ(iso("Thu, 30 Jul 2016 14:12:33 -0700"), "2016-07-30T21:12:33Z");
  EXPECT_EQ(iso("30 Jul 2016 21:12:33 GMT"), "2016-07-30T21:12:33Z");
}

TEST(TimeParsing, HttpDates) {
  auto imf = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
  ASSERT_TRUE(imf);
  EXPECT_EQ(format_timestamp(*imf), "1994-11-06T08:49:37Z");
  auto rfc850 = parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT");
  ASSERT_TRUE(rfc850);
  EXPECT_EQ(*rfc850, *imf);
  auto asctime = parse_http_date("Sun Nov  6 08:49:37 1994");
  ASSERT_TRUE(asctime);
  EXPECT_EQ(*asctime, *imf);
}

TEST(TimeParsing, GarbageIsNullopt) {
  EXPECT_FALSE(parse_timestamp(""));
  EXPECT_FALSE(parse_timestamp("yesterday"));
  EXPECT_FALSE(parse_timestamp("2022-13-01T00:00:00Z"));
  EXPECT_FALSE(parse_timestamp("2022-02-30T00:00:00Z"));
  EXPECT_FALSE(parse_timestamp("2022-01-01T00:00:00Z trailing"));
}

TEST(Converters, TimeNormalizesToUtcIso) {
  const auto c = converters::time();
  EXPECT_EQ(convert(c, "Thu, 30 Jul 2016 21:12:33 +0000"), "2016-07-30T21:12:33Z");
  EXPECT_EQ(convert(c, "2016-07-30T23:12:33.100+02:00"), "2016-07-30T21:12:33.1Z");
  EXPECT_THROW(convert(c, "not a time"), InvalidInput);
  EXPECT_THROW(convert(c, 12), InvalidInput);
  EXPECT_EQ(c.sql("(data->>'at')"), "((data->>'at'))::timestamptz");
}

TEST(Converters, UnixTimestamps) {
  const auto s = converters::unix_timestamp();
  EXPECT_EQ(convert(s, 1469913153), "2016-07-30T21:12:33Z");
  EXPECT_EQ(convert(s, "1469913153"), "2016-07-30T21:12:33Z");
  EXPECT_EQ(convert(s, 1469913153.5), "2016-07-30T21:12:33.5Z");
  EXPECT_EQ(convert(s, 0), "1970-01-01T00:00:00Z");
  EXPECT_THROW(convert(s, "soon"), InvalidInput);
  // Past what 64 bits of microseconds hold: refused, not wrapped (found by the payload_row fuzz target).
  EXPECT_THROW(convert(s, 1e13), InvalidInput);
  EXPECT_THROW(convert(s, -9.3e12), InvalidInput);
  EXPECT_THROW(convert(s, -9.2e12), InvalidInput) << "before 4714-11-24 BC, PostgreSQL's first instant";
  EXPECT_EQ(convert(s, 4.0e11), "14645-06-30T15:06:40Z");  // past std::chrono::year's range
  const auto ms = converters::unix_timestamp_ms();
  EXPECT_EQ(convert(ms, 1469913153250LL), "2016-07-30T21:12:33.25Z");
}

TEST(Converters, ToIntegerStripsQuotes) {
  const auto c = converters::to_integer();
  EXPECT_EQ(convert(c, 12), 12);
  EXPECT_EQ(convert(c, "12"), 12);
  EXPECT_EQ(convert(c, "\"12\""), 12);
  EXPECT_EQ(convert(c, "'-7'"), -7);
  EXPECT_EQ(convert(c, " 42 "), 42);
  EXPECT_EQ(convert(c, 3.0), 3);
  EXPECT_THROW(convert(c, "12abc"), InvalidInput);
  EXPECT_THROW(convert(c, 1.5), InvalidInput);
  EXPECT_THROW(convert(c, ""), InvalidInput);
}

TEST(Converters, CommaSeparatedList) {
  const auto c = converters::comma_separated();
  EXPECT_EQ(convert(c, "a, b,c"), json({"a", "b", "c"}));
  EXPECT_EQ(convert(c, "a,, ,b,"), json({"a", "b"}));
  EXPECT_EQ(convert(c, ""), json::array());
  EXPECT_EQ(convert(c, json({"x"})), json({"x"}));
}

TEST(Converters, RegexCapture) {
  const auto c = converters::regex_capture(R"(/users/(\d+)/)");
  EXPECT_EQ(convert(c, "https://x.test/users/123/profile"), "123");
  EXPECT_TRUE(convert(c, "https://x.test/teams/9/").is_null());
  EXPECT_TRUE(convert(c, 5).is_null());
  const auto second = converters::regex_capture(R"((\w+)@(\w+))", 2);
  EXPECT_EQ(convert(second, "me@example"), "example");
}

TEST(Converters, Date) {
  const auto c = converters::date();
  EXPECT_EQ(convert(c, "2022-03-04"), "2022-03-04");
  EXPECT_EQ(convert(c, "2022-03-04T23:30:00-02:00"), "2022-03-05") << "the UTC date";
  EXPECT_EQ(convert(c, "Thu, 30 Jul 2016 21:12:33 +0000"), "2016-07-30");
  EXPECT_THROW(convert(c, "someday"), InvalidInput);
}

// Issue 16, item 2: every timestamp accepted means what PostgreSQL means by
// it (each expectation below was checked against PostgreSQL 15 with
// TimeZone=UTC; tests/pg/timestamp_corpus_test.cpp compares a corpus with the
// server), and anything else is refused.
TEST(TimeParsing, YearsPast32767DoNotWrap) {
  EXPECT_EQ(iso("070000-01-01T00:00:00Z"), "70000-01-01T00:00:00Z");
  EXPECT_EQ(iso("67560-03-04T05:06:07Z"), "67560-03-04T05:06:07Z");
  EXPECT_EQ(iso("32768-01-01T00:00:00Z"), "32768-01-01T00:00:00Z");
  EXPECT_EQ(iso("294246-12-31T23:59:59.999999Z"), "294246-12-31T23:59:59.999999Z");
  // PostgreSQL's range ends at 294276-12-31; 64 bits of microseconds since
  // 1970 end at 294247-01-10T04:00:54.775807Z: past either, refused.
  EXPECT_EQ(iso("294247-01-10T04:00:54.775807Z"), "294247-01-10T04:00:54.775807Z");
  EXPECT_EQ(iso("294247-01-10T04:00:54.775808Z"), "(nullopt)");
  EXPECT_EQ(iso("294277-01-01T00:00:00Z"), "(nullopt)");
  EXPECT_EQ(iso("1000000-01-01T00:00:00Z"), "(nullopt)");
}

TEST(TimeParsing, FieldsOutOfRangeAreRefused) {
  EXPECT_EQ(iso("2020-01-01T24:30:00Z"), "(nullopt)");
  EXPECT_EQ(iso("2020-01-01T24:00:01Z"), "(nullopt)");
  EXPECT_EQ(iso("2020-01-01T25:00:00Z"), "(nullopt)");
  EXPECT_EQ(iso("2020-01-01T23:60:00Z"), "(nullopt)");
  EXPECT_EQ(iso("2020-01-01T23:59:60.5Z"), "(nullopt)");
  EXPECT_EQ(iso("2020-01-01T00:00:00+99:99"), "(nullopt)");
  EXPECT_EQ(iso("2020-01-01T00:00:00+16:00"), "(nullopt)");
  EXPECT_EQ(iso("2020-01-01T00:00:00+15:60"), "(nullopt)");
  EXPECT_EQ(iso("2021-02-29T00:00:00Z"), "(nullopt)");
  EXPECT_EQ(iso("0000-06-01T00:00:00Z"), "(nullopt)") << "PostgreSQL has no year 0";
  EXPECT_EQ(iso("-0001-01-01T00:00:00Z"), "(nullopt)");
  EXPECT_EQ(iso("2020-01-01T00:00:00,5Z"), "(nullopt)") << "PostgreSQL refuses a decimal comma";
}

TEST(TimeParsing, EdgesPostgresAcceptsMeanTheSameInstant) {
  EXPECT_EQ(iso("2020-01-01T24:00:00Z"), "2020-01-02T00:00:00Z");
  EXPECT_EQ(iso("2020-12-31T23:59:60Z"), "2021-01-01T00:00:00Z") << "60 seconds carry into the next minute";
  EXPECT_EQ(iso("2020-01-01T23:58:60Z"), "2020-01-01T23:59:00Z");
  EXPECT_EQ(iso("2020-01-01T00:00:00+15:59:59"), "2019-12-31T08:00:01Z");
  EXPECT_EQ(iso("2020-01-01T00:00:00-15:59:59"), "2020-01-01T15:59:59Z");
  EXPECT_EQ(iso("2020-02-29t00:00:00z"), "2020-02-29T00:00:00Z");
  EXPECT_EQ(iso("2020-01-01 00:00:00"), "2020-01-01T00:00:00Z") << "no offset: the session's UTC";
  EXPECT_EQ(iso("0001-01-01T00:00:00+01:00"), "0001-12-31T23:00:00Z BC");
  EXPECT_EQ(iso("4714-11-24T00:00:00Z BC"), "4714-11-24T00:00:00Z BC");
  EXPECT_EQ(iso("4714-11-23T23:59:59.999999Z BC"), "(nullopt)");
}

TEST(TimeParsing, FractionsRoundToMicrosecondsAsPostgresDoes) {
  // PostgreSQL: rint(strtod(".fff") * 1e6), so halves go to even in double arithmetic.
  EXPECT_EQ(iso("2020-01-01T00:00:00.0000005Z"), "2020-01-01T00:00:00Z");
  EXPECT_EQ(iso("2020-01-01T00:00:00.0000015Z"), "2020-01-01T00:00:00.000002Z");
  EXPECT_EQ(iso("2020-01-01T00:00:00.0000025Z"), "2020-01-01T00:00:00.000002Z");
  EXPECT_EQ(iso("2020-01-01T00:00:00.9999995Z"), "2020-01-01T00:00:01Z");
  EXPECT_EQ(iso("2020-12-31T23:59:59.9999999Z"), "2021-01-01T00:00:00Z") << "carries into the next year";
  EXPECT_EQ(iso("2020-01-01T23:59:60.0000001Z"), "2020-01-02T00:00:00Z");
  EXPECT_EQ(iso("294276-12-31T23:59:59.9999999Z"), "(nullopt)");
}

TEST(Converters, DateKeepsYearsOfMoreThanFourDigits) {
  const auto c = converters::date();
  EXPECT_EQ(convert(c, "12345-06-07"), "12345-06-07");
  EXPECT_EQ(convert(c, "5874897-12-31"), "5874897-12-31") << "the last date PostgreSQL holds";
  EXPECT_EQ(convert(c, "0044-03-15 BC"), "0044-03-15 BC");
  EXPECT_EQ(convert(c, "12345-06-07T23:00:00-05:00"), "12345-06-08") << "the UTC date, as the SQL form";
  EXPECT_THROW(convert(c, "5874898-01-01"), InvalidInput);
  EXPECT_THROW(convert(c, "2021-02-29"), InvalidInput);
  EXPECT_THROW(convert(c, "0000-01-01"), InvalidInput);
}

TEST(Converters, OutOfRangeSaysSo) {
  try {
    (void)convert(converters::time(), "294277-01-01T00:00:00Z");
    FAIL() << "expected InvalidInput";
  } catch (const InvalidInput& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("out of range"));
  }
}

TEST(ColumnValue, AnOutOfRangeTimestampNamesTheRowAndTheColumn) {
  testing::TestHarness h;
  const ServiceIntegration si = h.integration();
  auto r = h.replicator(si);
  // The issue's webhook: year 67,560 was stored as 2024.
  r->upsert_webhook_body({{"my_id", "far"}, {"at", "67560-01-01T00:00:00Z"}});
  EXPECT_EQ(h.replica->find(r->table_spec(), "far")->values[0], "67560-01-01T00:00:00Z");
  for (const char* bad : {"294277-01-01T00:00:00Z", "2024-01-01T24:30:00Z", "2024-01-01T00:00:00+99:99"}) {
    try {
      r->upsert_webhook_body({{"my_id", "row-17"}, {"at", bad}});
      ADD_FAILURE() << "accepted " << bad;
    } catch (const InvalidInput& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr("row-17")) << bad;
      EXPECT_THAT(e.what(), ::testing::HasSubstr("column 'at'")) << bad;
    }
  }
}

TEST(ColumnValue, DataKeyEventKeyOptionalAndDefaults) {
  const json resource = {{"created", "2024-01-01T00:00:00Z"}, {"nested", {{"n", "5"}}}};
  const json event = {{"type", "charge.updated"}};
  Column at("created_at", ColumnType::timestamptz);
  at.key("created").convert(converters::time());
  EXPECT_EQ(at.value_from({resource, nullptr, nullptr, "created_at"}), "2024-01-01T00:00:00Z");

  Column n("n", ColumnType::integer);
  n.key(std::vector<std::string>{"nested", "n"}).convert(converters::to_integer());
  EXPECT_EQ(n.value_from({resource, nullptr, nullptr, "n"}), 5);

  Column type("type", ColumnType::text);
  type.key("type").event({"type"}).optional();
  EXPECT_EQ(type.value_from({resource, &event, nullptr, "type"}), "charge.updated");
  EXPECT_TRUE(type.value_from({resource, nullptr, nullptr, "type"}).is_null());

  Column missing("missing", ColumnType::text);
  EXPECT_THROW((void)missing.value_from({resource, nullptr, nullptr, "missing"}), InvalidInput);

  Column defaulted("status", ColumnType::text);
  defaulted.optional().defaults([](const ConvertContext&) { return json("new"); });
  EXPECT_EQ(defaulted.value_from({resource, nullptr, nullptr, "status"}), "new");
}

TEST(ColumnValue, WrongTypeIsInvalidInput) {
  const json resource = {{"count", "many"}, {"flag", "yes"}};
  Column count("count", ColumnType::integer);
  EXPECT_THROW((void)count.value_from({resource, nullptr, nullptr, "count"}), InvalidInput);
  Column flag("flag", ColumnType::boolean);
  EXPECT_THROW((void)flag.value_from({resource, nullptr, nullptr, "flag"}), InvalidInput);
}

TEST(ColumnValue, DigFollowsPaths) {
  const json doc = {{"a", {{"b", {{"c", 1}}}}}};
  ASSERT_NE(json_at(doc, {"a", "b", "c"}), nullptr);
  EXPECT_EQ(*json_at(doc, {"a", "b", "c"}), 1);
  EXPECT_EQ(json_at(doc, {"a", "x"}), nullptr);
  EXPECT_EQ(json_at(doc, {"a", "b", "c", "d"}), nullptr);
  EXPECT_EQ(sql_type(ColumnType::text_array), "text[]");
  EXPECT_EQ(sql_type(ColumnType::timestamptz), "timestamptz");
}

// The inverse of timestamp_from_unix_seconds for whole seconds, rounding down
// (the README's replicator filters its API by it).
TEST(UnixSeconds, AreWholeSecondsSince1970RoundedDown) {
  EXPECT_EQ(unix_seconds(timestamp_from_unix_seconds(1'700'000'000)), 1'700'000'000);
  EXPECT_EQ(unix_seconds(timestamp_from_text("1970-01-01T00:00:00.999999Z")), 0);
  EXPECT_EQ(unix_seconds(timestamp_from_text("1969-12-31T23:59:59.5Z")), -1);
}

// --- The README's column-type table, row by row (tests/support/column_type_cases.hpp) ---

json column_value(ColumnType type, const json& input, const Converter& converter) {
  const json resource{{"v", input}};
  Column column("v", type);
  if (converter.fn) column.convert(converter);
  return column.value_from(ConvertContext{resource, nullptr, nullptr, "v"});
}

TEST(ColumnTypes, EachAcceptedRowOfTheReadmeTableStoresWhatItSays) {
  for (const auto& c : test::accepted_column_type_cases()) {
    SCOPED_TRACE(std::string(sql_type(c.type)) + " <- " + c.input.dump() + " " + c.label);
    EXPECT_EQ(column_value(c.type, c.input, c.converter), c.stored);
  }
}

TEST(ColumnTypes, EachRefusedRowOfTheReadmeTableIsAnInvalidInputNamingTheColumn) {
  for (const auto& c : test::refused_column_type_cases()) {
    SCOPED_TRACE(std::string(sql_type(c.type)) + " <- " + c.input.dump());
    try {
      const json stored = column_value(c.type, c.input, c.converter);
      ADD_FAILURE() << "accepted as " << stored.dump();
    } catch (const InvalidInput& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr(c.message));
      EXPECT_THAT(e.what(), ::testing::HasSubstr("column 'v'"));
    }
  }
}

TEST(ColumnTypes, NullIsSqlNullAndAMissingKeyIsRefusedUnlessOptional) {
  for (const ColumnType type : {ColumnType::text, ColumnType::bigint, ColumnType::numeric,
                                ColumnType::timestamptz, ColumnType::jsonb, ColumnType::text_array}) {
    EXPECT_TRUE(column_value(type, nullptr, {}).is_null()) << sql_type(type);
    const json empty = json::object();
    EXPECT_THROW((void)Column("v", type).value_from(ConvertContext{empty, nullptr, nullptr, "v"}),
                 InvalidInput);
    EXPECT_TRUE(
        Column("v", type).optional().value_from(ConvertContext{empty, nullptr, nullptr, "v"}).is_null());
  }
}

// The numeric check follows PostgreSQL 15's numeric input at its edges (the
// server's own answers are checked in tests/pg/column_types_test.cpp).
TEST(ColumnTypes, NumericTextFollowsPostgresSyntaxAndRange) {
  const auto takes = [](const std::string& text) {
    try {
      (void)column_value(ColumnType::numeric, text, {});
      return true;
    } catch (const InvalidInput&) {
      return false;
    }
  };
  for (const std::string ok :
       {"1e131071", "1e-16383", "0e999999", "+.5", "5.", "-0", "inf", "+Infinity", "nan", "\t42\n", "1E+3"}) {
    EXPECT_TRUE(takes(ok)) << ok;
  }
  for (const std::string refused : {"1e131072", "1e-16384", "0.0000e-20000", "0x1p3", "- 1", "1 e5", "1e",
                                    "e5", ".", "1.2.3", "-nan", "1e1234567890", "١٢"}) {
    EXPECT_FALSE(takes(refused)) << refused;
  }
  EXPECT_TRUE(takes("1" + std::string(131071, '0'))) << "131072 digits before the point";
  EXPECT_FALSE(takes("1" + std::string(131072, '0'))) << "131073";
}

}  // namespace
}  // namespace webhookdb
