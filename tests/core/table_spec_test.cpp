// Table specs: index naming (WebhookDB's md5 shortening), validation, and the
// update rule's C++ evaluation.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "webhookdb/errors.hpp"
#include "webhookdb/table_spec.hpp"

namespace webhookdb {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using ::testing::EndsWith;

TableSpec spec_with(std::vector<Column> columns, std::vector<IndexSpec> extra = {}) {
  TableSpec spec;
  spec.table = "widgets";
  spec.opaque_id = "svi_abc";
  spec.remote_key = Column("id", ColumnType::text);
  spec.columns = std::move(columns);
  spec.extra_indexes = std::move(extra);
  return spec;
}

TEST(IndexName, ShortNamesAreSpelledOut) {
  EXPECT_EQ(index_name("svi_abc", {"at"}), "svi_abc_at_idx");
  EXPECT_EQ(index_name("svi_abc", {"a", "b"}), "svi_abc_a_b_idx");
}

TEST(IndexName, NamesPast63BytesUseATruncatedMd5) {
  const std::string opaque = "svi_0123456789abcdefghijkl";  // 26 bytes, like a real opaque id
  const std::vector<std::string> cols = {"a_very_long_column_name", "another_long_column_name"};
  const std::string spelled = opaque + "_a_very_long_column_name_another_long_column_name_idx";
  ASSERT_GT(spelled.size(), 63U);
  const auto name = index_name(opaque, cols);
  EXPECT_LE(name.size(), 63U);
  EXPECT_THAT(name, StartsWith(opaque + "_"));
  EXPECT_THAT(name, EndsWith("_idx"));
  const std::string hash = name.substr(opaque.size() + 1, name.size() - opaque.size() - 5);
  EXPECT_GE(hash.size(), 8U);
  EXPECT_EQ(hash.find_first_not_of("0123456789abcdef"), std::string::npos) << hash;
  // The column part is md5("<col>_<col>") cut to what fits.
  EXPECT_EQ(name, opaque + "_5392cb497fe506252465198c28df4f6e_idx");
  EXPECT_EQ(name, index_name(opaque, cols)) << "deterministic";
  EXPECT_NE(name, index_name(opaque, {"a_very_long_column_name", "another_long_column_nam2"}));
}

TEST(IndexName, ExactlyAtTheLimitIsKept) {
  const std::string opaque = "svi_x";
  const std::string col(63 - opaque.size() - 5, 'c');
  const auto name = index_name(opaque, {col});
  EXPECT_EQ(name.size(), 63U);
  EXPECT_EQ(name, opaque + "_" + col + "_idx");
}

TEST(TableSpecIndexes, ColumnIndexesThenExtraOnes) {
  Column at("at", ColumnType::timestamptz);
  at.indexed();
  Column email("email", ColumnType::text);
  email.indexed_not_null();
  auto spec = spec_with({at, email, Column("plain", ColumnType::text)}, {IndexSpec{{"at", "email"}, "", false, ""}});
  const auto idx = spec.indexes();
  ASSERT_EQ(idx.size(), 3U);
  EXPECT_EQ(idx[0].name, "svi_abc_at_idx");
  EXPECT_TRUE(idx[0].where.empty());
  EXPECT_EQ(idx[1].name, "svi_abc_email_idx");
  EXPECT_THAT(idx[1].where, HasSubstr("IS NOT NULL"));
  EXPECT_EQ(idx[2].name, "svi_abc_at_email_idx");
}

TEST(TableSpecIndexes, DuplicateIndexNamesAreABrokenSpecification) {
  Column at("at", ColumnType::timestamptz);
  at.indexed();
  auto spec = spec_with({at}, {IndexSpec{{"at"}, "", false, ""}});
  try {
    (void)spec.indexes();
    FAIL() << "expected BrokenSpecification";
  } catch (const BrokenSpecification& e) {
    EXPECT_THAT(e.what(), HasSubstr("svi_abc_at_idx"));
  }
  EXPECT_THROW(spec.validate(), BrokenSpecification);
}

TEST(TableSpecIndexes, AnIndexOnAnUnknownColumnIsABrokenSpecification) {
  auto spec = spec_with({Column("at", ColumnType::timestamptz)}, {IndexSpec{{"nope"}, "", false, ""}});
  EXPECT_THROW((void)spec.indexes(), BrokenSpecification);
}

TEST(TableSpecValidate, RejectsInconsistentSpecs) {
  EXPECT_NO_THROW(spec_with({Column("at", ColumnType::timestamptz)}).validate());
  EXPECT_THROW(spec_with({Column("a", ColumnType::text), Column("a", ColumnType::text)}).validate(),
               BrokenSpecification);
  EXPECT_THROW(spec_with({Column("data", ColumnType::text)}).validate(), BrokenSpecification);
  auto no_table = spec_with({});
  no_table.table.clear();
  EXPECT_THROW(no_table.validate(), BrokenSpecification);
  auto bad_rule = spec_with({Column("at", ColumnType::timestamptz)});
  bad_rule.update_rule = UpdateRule::when_newer("updated");
  EXPECT_THROW(bad_rule.validate(), BrokenSpecification);
  EXPECT_EQ(bad_rule.column_index("at"), 0U);
  EXPECT_FALSE(bad_rule.column_index("updated"));
}

Row row(json at, json data = json::object()) { return Row{"k", {std::move(at)}, nullptr, std::move(data)}; }

TEST(UpdateRuleAllows, NewerComparesTimestampsNotText) {
  auto spec = spec_with({Column("at", ColumnType::timestamptz)});
  const auto rule = UpdateRule::when_newer("at");
  EXPECT_TRUE(rule.allows(spec, row("2024-01-01T00:00:00Z"), row("2024-01-02T00:00:00Z")));
  EXPECT_FALSE(rule.allows(spec, row("2024-01-02T00:00:00Z"), row("2024-01-01T00:00:00Z")));
  EXPECT_FALSE(rule.allows(spec, row("2024-01-01T00:00:00Z"), row("2024-01-01T00:00:00Z"))) << "equal is not newer";
  // Text order would say "2024-01-01T00:00:00.5Z" < "2024-01-01T00:00:00Z"; time order says the opposite.
  EXPECT_TRUE(rule.allows(spec, row("2024-01-01T00:00:00Z"), row("2024-01-01T00:00:00.5Z")));
  EXPECT_TRUE(rule.allows(spec, row(nullptr), row("2024-01-01T00:00:00Z"))) << "a null stored value is replaced";
  EXPECT_FALSE(rule.allows(spec, row("2024-01-01T00:00:00Z"), row(nullptr)));
}

TEST(UpdateRuleAllows, AlwaysDataDiffersAndCustom) {
  auto spec = spec_with({Column("at", ColumnType::timestamptz)});
  EXPECT_TRUE(UpdateRule::always().allows(spec, row("2024-01-02T00:00:00Z"), row("2024-01-01T00:00:00Z")));
  const auto differs = UpdateRule::when_data_differs();
  EXPECT_FALSE(differs.allows(spec, row(nullptr, {{"a", 1}}), row(nullptr, {{"a", 1}})));
  EXPECT_TRUE(differs.allows(spec, row(nullptr, {{"a", 1}}), row(nullptr, {{"a", 2}})));
  const auto custom = UpdateRule::custom("{table}.\"v\" < EXCLUDED.\"v\"", [](const TableSpec&, const Row& s, const Row& i) {
    return s.data.value("v", 0) < i.data.value("v", 0);
  });
  EXPECT_TRUE(custom.allows(spec, row(nullptr, {{"v", 1}}), row(nullptr, {{"v", 2}})));
  EXPECT_FALSE(custom.allows(spec, row(nullptr, {{"v", 3}}), row(nullptr, {{"v", 2}})));
}

TEST(UpdateRuleCollapse, KeepsTheVersionTheRuleKeepsPerKeyInFirstSeenOrder) {
  auto spec = spec_with({Column("at", ColumnType::timestamptz)});
  auto keyed = [](json key, const char* at) { return Row{std::move(key), {at}, nullptr, json::object()}; };
  const std::string bad_a = "\xff\x01", bad_b = "\xff\x02";  // invalid UTF-8, different bytes
  std::vector<Row> rows{keyed("a", "2024-01-02T00:00:00Z"), keyed(1, "2024-01-01T00:00:00Z"),
                        keyed("a", "2024-01-01T00:00:00Z"),  // older: refused
                        keyed("1", "2024-01-01T00:00:00Z"),  // the text "1" is another key than 1
                        keyed(1, "2024-01-03T00:00:00Z"),    // newer: replaces in place
                        keyed(bad_a, "2024-01-01T00:00:00Z"), keyed(bad_b, "2024-01-01T00:00:00Z")};
  const auto kept = UpdateRule::when_newer("at").collapse(spec, rows);
  ASSERT_EQ(kept.size(), 5U);
  EXPECT_EQ(kept[0], rows[0]);
  EXPECT_EQ(kept[1], rows[4]);
  EXPECT_EQ(kept[2], rows[3]);
  EXPECT_EQ(kept[3].key, bad_a);
  EXPECT_EQ(kept[4].key, bad_b);
  // Under `always` the later version wins, as it would in the table.
  const auto last = UpdateRule::always().collapse(spec, rows);
  ASSERT_EQ(last.size(), 5U);
  EXPECT_EQ(last[0], rows[2]);
}

}  // namespace
}  // namespace webhookdb
