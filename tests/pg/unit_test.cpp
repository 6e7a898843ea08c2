// Pure helpers of the pg adapter: no server needed.

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "pg/sql.hpp"
#include "pg/values.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/json_text.hpp"
#include "webhookdb/pg/advisory_lock.hpp"
#include "webhookdb/pg/config.hpp"

namespace webhookdb::pg {
namespace {

using nlohmann::json;

TEST(PgSql, QuotesIdentifiersAndDoublesQuotes) {
  EXPECT_EQ(sql::ident("plain"), "\"plain\"");
  EXPECT_EQ(sql::ident("Mixed Case"), "\"Mixed Case\"");
  EXPECT_EQ(sql::ident("a\"b"), "\"a\"\"b\"");
  EXPECT_EQ(sql::ident("x\"; DROP TABLE t; --"), "\"x\"\"; DROP TABLE t; --\"");
  EXPECT_EQ(sql::qualified("s", "t"), "\"s\".\"t\"");
}

TEST(PgSql, RejectsIdentifiersPostgresWouldMangle) {
  EXPECT_THROW((void)sql::ident(""), BrokenSpecification);
  EXPECT_THROW((void)sql::ident(std::string("a\0b", 3)), BrokenSpecification);
  EXPECT_THROW((void)sql::ident("bad\xff"), BrokenSpecification);
  EXPECT_NO_THROW((void)sql::ident(std::string(63, 'x')));
  try {
    (void)sql::ident(std::string(64, 'x'), "table");
    FAIL() << "a 64-byte name was accepted";
  } catch (const BrokenSpecification& e) {
    EXPECT_NE(std::string(e.what()).find("63 bytes"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("table"), std::string::npos) << e.what();
  }
  // 63 bytes of multi-byte characters is the limit, not 63 characters.
  std::string emoji;
  for (int i = 0; i < 16; ++i) emoji += "\xF0\x9F\x98\x80";  // 64 bytes
  EXPECT_THROW((void)sql::ident(emoji), BrokenSpecification);
}

TEST(PgSql, LiteralsAndPaths) {
  EXPECT_EQ(sql::literal("it's"), "'it''s'");
  EXPECT_EQ(sql::literal("back\\slash"), "'back\\slash'");
  EXPECT_EQ(sql::path_literal({"a", "b'c"}), "ARRAY['a','b''c']::text[]");
  EXPECT_THROW((void)sql::literal(std::string("\0", 1)), BrokenSpecification);
}

TEST(PgSql, Utf8Validation) {
  EXPECT_TRUE(sql::valid_utf8("plain ascii"));
  EXPECT_TRUE(sql::valid_utf8("caf\xC3\xA9 \xF0\x9F\x98\x80 \xE2\x82\xAC"));
  EXPECT_FALSE(sql::valid_utf8("\xff"));
  EXPECT_FALSE(sql::valid_utf8("\xC3"));              // truncated
  EXPECT_FALSE(sql::valid_utf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(sql::valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(sql::valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
}

TEST(PgValues, EncodesPerColumnType) {
  std::string out;
  EXPECT_FALSE(values::encode(ColumnType::text, nullptr, out));
  ASSERT_TRUE(values::encode(ColumnType::text, std::string("a\0b", 3), out));
  EXPECT_EQ(out, "ab");  // NUL removed
  ASSERT_TRUE(values::encode(ColumnType::bigint, 12, out));
  EXPECT_EQ(out, "12");
  ASSERT_TRUE(values::encode(ColumnType::integer, 3.0, out));
  EXPECT_EQ(out, "3");
  ASSERT_TRUE(values::encode(ColumnType::boolean, true, out));
  EXPECT_EQ(out, "true");
  ASSERT_TRUE(values::encode(ColumnType::text_array, json::array({"a", "b\"c", nullptr, "d\\e"}), out));
  EXPECT_EQ(out, R"({"a","b\"c",NULL,"d\\e"})");
  ASSERT_TRUE(values::encode(ColumnType::integer_array, json::array(), out));
  EXPECT_EQ(out, "{}");
  ASSERT_TRUE(values::encode(ColumnType::jsonb, json{{"x", std::string("a\0b", 3)}}, out));
  EXPECT_EQ(out, R"({"x":"ab"})");
  EXPECT_THROW(values::encode(ColumnType::text, "bad\xff", out), InvalidInput);
  EXPECT_THROW(values::encode(ColumnType::jsonb, json{{"x", "bad\xff"}}, out), InvalidInput);
  EXPECT_THROW(values::encode(ColumnType::text_array, "not an array", out), InvalidInput);
}

TEST(PgValues, TimestampsGoOutInUtcAndBcAsPostgresWritesIt) {
  const std::pair<const char*, const char*> cases[] = {
      {"2022-01-01T05:00:00+05:00", "2022-01-01 00:00:00.000000+00"},
      // Year 0 is refused, as PostgreSQL refuses it (issue 16); 1 BC is written "BC".
      {"0001-01-01T00:00:00+01:00", "0001-12-31 23:00:00.000000+00 BC"},
      {"0001-06-01T00:00:00Z BC", "0001-06-01 00:00:00.000000+00 BC"},
      {"70000-01-01T00:00:00Z", "70000-01-01 00:00:00.000000+00"},
      {"2022-01-01T00:00:00.5Z", "2022-01-01 00:00:00.500000+00"},
      {"0001-01-01T00:00:00.000001Z", "0001-01-01 00:00:00.000001+00"},
      {"12345-06-07T08:09:10.123456Z", "12345-06-07 08:09:10.123456+00"},
  };
  for (const auto& [in, expected] : cases) {
    std::string out;
    ASSERT_TRUE(values::encode(ColumnType::timestamptz, in, out)) << in;
    EXPECT_EQ(out, expected) << in;
  }
}

TEST(PgValues, EpochTextRoundTrip) {
  auto t = values::timestamp_from_epoch_text("1640995200.123456");
  ASSERT_TRUE(t);
  EXPECT_EQ(format_timestamp(*t), "2022-01-01T00:00:00.123456Z");
  t = values::timestamp_from_epoch_text("-1.500000");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->time_since_epoch().count(), -1'500'000);
  EXPECT_FALSE(values::timestamp_from_epoch_text("Infinity"));
}

TEST(PgValues, CanonicalKeys) {
  EXPECT_EQ(values::canonical_key(ColumnType::bigint, "007"), "7");
  EXPECT_EQ(values::canonical_key(ColumnType::uuid, "{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}"),
            values::canonical_key(ColumnType::uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
  EXPECT_EQ(values::canonical_key(ColumnType::text, "Abc"), "Abc");
}

TEST(PgValues, CopyEscaping) {
  std::string buf;
  values::append_copy_escaped(buf, "a\tb\nc\\d\re");
  EXPECT_EQ(buf, "a\\tb\\nc\\\\d\\re");
}

// Reverses COPY text escaping (what the server does before jsonb_in).
std::string copy_unescaped(std::string_view field) {
  std::string out;
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] != '\\') {
      out += field[i];
      continue;
    }
    EXPECT_LT(i + 1, field.size()) << "a lone backslash ends the field";
    if (i + 1 >= field.size()) break;
    const char c = field[++i];
    out += c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : c;
  }
  return out;
}

// The direct writer against the general path: the same JSON after COPY's
// unescaping, no raw tab, newline or CR in the field, and the same errors.
void expect_writer_matches(const json& doc) {
  std::string fast = "prefix";
  values::append_jsonb_copy(fast, doc);
  ASSERT_EQ(fast.substr(0, 6), "prefix");
  const std::string field = fast.substr(6);
  EXPECT_EQ(field.find_first_of("\t\n\r"), std::string::npos) << field;
  std::string general;
  values::append_copy_escaped(general, to_jsonb_text(doc));
  EXPECT_EQ(json::parse(copy_unescaped(field)), json::parse(copy_unescaped(general))) << field;
}

TEST(PgValues, JsonbCopyWriterMatchesTheGeneralPath) {
  const std::string nul_inside("a\0b", 3);
  expect_writer_matches(
      json::parse(R"({"a":"x\"y\\z","b":[1,-2,3.5,1.0,1e300,true,false,null],"c":{"d":{}},"e":[]})"));
  expect_writer_matches(
      json{{"tabs", "a\tb\nc\rd\be\ff\x01g\x1fh\x7f"}, {"nul", nul_inside}, {nul_inside, 1}});
  expect_writer_matches(json{{"literal", "\\u0000 stays"}, {"slashes", "\\\\\\"}, {"quote", "\""}});
  expect_writer_matches(json{{"unicode", "h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"}, {"\xC3\xA9", "key"}});
  expect_writer_matches(json{{"big", std::numeric_limits<std::uint64_t>::max()},
                             {"small", std::numeric_limits<std::int64_t>::min()}});
  expect_writer_matches(json("scalar"));
  expect_writer_matches(json(nullptr));
  expect_writer_matches(json::binary({1, 2, 3}));
  json deep = json::array();
  for (int i = 0; i < 300; ++i) deep = json::array({deep, i});
  expect_writer_matches(deep);
  // Random documents of every kind of character.
  std::uint64_t state = 99;
  const auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 33U;
  };
  for (int n = 0; n < 300; ++n) {
    json doc = json::object();
    for (int k = 0; k < 6; ++k) {
      std::string text;
      const auto len = next() % 24;
      for (std::uint64_t i = 0; i < len; ++i) {
        const auto pick = next() % 10;
        if (pick < 5)
          text += static_cast<char>(next() % 0x80);  // ASCII, controls and NUL included
        else if (pick < 7)
          text += "\xC3\xA9";
        else if (pick < 8)
          text += "\\u0000";
        else if (pick < 9)
          text += "\xF0\x9F\x98\x80";
        else
          text += '"';
      }
      doc["k" + std::to_string(k) + text] =
          k % 2 == 0 ? json(text) : json::array({text, static_cast<double>(next()) / 7.0});
    }
    expect_writer_matches(doc);
  }
}

TEST(PgValues, JsonbCopyWriterRefusesInvalidUtf8) {
  for (const std::string bad :
       {"\xC3", "\xC3(", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\x80", "\xFF"}) {
    std::string buf;
    EXPECT_THROW(values::append_jsonb_copy(buf, json{{"a", "ok " + bad}}), InvalidInput) << bad.size();
    EXPECT_THROW(values::append_jsonb_copy(buf, json{{"ok " + bad, 1}}), InvalidInput);
    EXPECT_THROW(values::append_jsonb_copy(buf, json::array({1, json::array({"x" + bad})})), InvalidInput);
  }
}

TEST(PgAdvisoryLock, WebhookdbKeyNormalisation) {
  EXPECT_EQ(advisory_lock_key(0), 0);
  EXPECT_EQ(advisory_lock_key(5), 5);
  EXPECT_EQ(advisory_lock_key(-5), -5);
  EXPECT_EQ(advisory_lock_key(kMaxInt), kMaxInt);
  EXPECT_EQ(advisory_lock_key(kMinInt), kMinInt);
  // Between max int and max uint: folded into the negatives.
  EXPECT_EQ(advisory_lock_key(kMaxInt + 1), -1);
  EXPECT_EQ(advisory_lock_key(kMaxInt + 10), -10);
  EXPECT_EQ(advisory_lock_key(kMaxUint), -(kMaxUint - kMaxInt));
  // Above max uint: modulo max uint first.
  EXPECT_EQ(advisory_lock_key(kMaxUint + 5), 5);
  EXPECT_EQ(advisory_lock_key(kMaxUint * 3 + 7), 7);
  EXPECT_EQ(advisory_lock_key(kMaxUint + kMaxInt + 3), -3);
  // Below min int: rejected with a clear error.
  try {
    (void)advisory_lock_key(kMinInt - 1);
    FAIL() << "a key below min int was accepted";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("-2147483649"), std::string::npos) << e.what();
  }
  EXPECT_EQ(advisory_lock_namespace(16384U), 16384);
  EXPECT_EQ(advisory_lock_namespace(4'000'000'000U), -(4'000'000'000LL - kMaxInt));
}

TEST(PgConfig, RedactsPasswords) {
  EXPECT_EQ(redact_database_url("postgresql://bob:hunter2@db.example:5432/app").find("hunter2"), std::string::npos);
  EXPECT_EQ(redact_database_url("postgresql://bob@db/app?password=hunter2&sslmode=require").find("hunter2"),
            std::string::npos);
  const std::string kv = redact_database_url("host=db user=bob password='hunter 2' dbname=app");
  EXPECT_EQ(kv.find("hunter 2"), std::string::npos) << kv;
  EXPECT_NE(kv.find("host=db"), std::string::npos) << kv;
}

// Every spelling libpq accepts: the password never survives, the rest does.
TEST(PgConfig, RedactConnectionStringEveryForm) {
  const std::string pw = "Hunter2pw";
  const auto expect_hidden = [&](const std::string& in, const std::string& kept, const std::string& secret) {
    const std::string out = redact_connection_string(in);
    EXPECT_EQ(out.find(secret), std::string::npos) << in << " -> " << out;
    EXPECT_NE(out.find(kept), std::string::npos) << in << " -> " << out;
  };
  expect_hidden("postgresql://bob:" + pw + "@db.example:5432/app", "db.example", pw);
  expect_hidden("postgres://bob:" + pw + "@db/app", "db", pw);
  expect_hidden("postgresql://bob:p%40ss%3Aword@db/app", "db", "p%40ss");
  expect_hidden("postgresql://bob:p%40ss%3Aword@db/app", "db", "p@ss");
  expect_hidden("postgresql://bob@db/app?password=" + pw + "&sslmode=require", "sslmode=require", pw);
  expect_hidden("postgresql://bob@db/app?sslmode=disable&password=" + pw, "sslmode=disable", pw);
  expect_hidden("postgresql://bob@db/app?pass%77ord=" + pw, "db", pw);
  expect_hidden("postgresql://bob@db/app?password=Hunter%32pw", "db", "Hunter%32pw");
  expect_hidden("postgresql://bob:" + pw + "@h1:5432,h2:5433/app", "h2", pw);
  expect_hidden("host=db password=" + pw, "db", pw);
  expect_hidden("host=db password = " + pw + " dbname=app", "app", pw);
  expect_hidden("host=db\tpassword\t=\t" + pw + "\ndbname=app", "app", pw);
  expect_hidden("host=db password='" + pw + " with spaces' dbname=app", "app", pw);
  expect_hidden("host=db password='it\\'s " + pw + "' dbname=app", "app", pw);
  expect_hidden("host=db password='back\\\\slash " + pw + "'", "db", pw);
  expect_hidden("password=" + pw, "password", pw);
  // The password spelled like another value: only the password goes.
  const std::string same = redact_connection_string("host=db user=db password=db");
  EXPECT_NE(same.find("host=db"), std::string::npos) << same;
  EXPECT_NE(same.find("user=db"), std::string::npos) << same;
  EXPECT_NE(same.find("password=REDACTED"), std::string::npos) << same;
  // What libpq cannot parse is not shown at all.
  for (const std::string& bad :
       {"host=db password='" + pw, "host=db password=" + pw + " bogus", "bogus_key=1 password=" + pw,
        "postgresql://bob:" + pw + "@db/app?bogus=1", "postgresql://bob:" + pw + "@[::1/db",
        std::string("host=db\0password=", 17) + pw}) {
    const std::string out = redact_connection_string(bad);
    EXPECT_EQ(out.find(pw), std::string::npos) << out;
    EXPECT_EQ(out.find("db"), std::string::npos) << out << ": nothing of an unparseable string is shown";
  }
  // Without a password nothing changes.
  EXPECT_EQ(redact_connection_string("postgresql://bob@db/app?sslmode=require"),
            "postgresql://bob@db/app?sslmode=require");
  EXPECT_EQ(redact_connection_string("host=db \t user=bob"), "host=db \t user=bob");
  EXPECT_EQ(redact_database_url("postgresql://bob:" + pw + "@db/app").find(pw), std::string::npos);
}

}  // namespace
}  // namespace webhookdb::pg
