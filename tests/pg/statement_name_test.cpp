// Prepared statements are named "webhookdb_upsert_<FNV-1a 64 of the text>_<length>"
// (src/pg/replica_store.cpp, text_hash): checked from outside, against the
// statement text the server holds, with FNV-1a's published offset basis
// 14695981039346656037 (issue 16: the code had 1469598103934665603).

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "pg/pg_support.hpp"
#include "webhookdb/pg/replica_store.hpp"

namespace webhookdb {
namespace {

std::string fnv1a_64_hex(const std::string& text) {
  std::uint64_t h = 14695981039346656037ULL;
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

class StatementNameTest : public test::PgTest {};

TEST_F(StatementNameTest, FnvOneAOffsetBasisIsTheStandardOne) {
  EXPECT_EQ(fnv1a_64_hex(""), "cbf29ce484222325");   // FNV-1a 64 of "" is its offset basis
  EXPECT_EQ(fnv1a_64_hex("a"), "af63dc4c8601ec8c");  // published test vector
  // One connection, so the statement prepared by the upsert is visible here.
  pg::PgReplicaStore store(config(1));
  const TableSpec spec = test::full_spec();
  store.create_table(spec);
  store.upsert(spec, std::vector<Row>{test::full_row("a", "2024-01-01T00:00:00Z", "x")},
               test::with_method(WriteMethod::single_row));
  const auto r = store.pool().exec(
      "SELECT name, statement FROM pg_prepared_statements WHERE name LIKE 'webhookdb_upsert_%'");
  ASSERT_EQ(r.rows.size(), 1U);
  const std::string statement = *r.rows[0][1];
  EXPECT_EQ(*r.rows[0][0],
            "webhookdb_upsert_" + fnv1a_64_hex(statement) + "_" + std::to_string(statement.size()));
}

}  // namespace
}  // namespace webhookdb
