// json_path.hpp: the one function that follows a path into JSON (columns,
// webhook payloads and paginators). Pure logic.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "webhookdb/json_path.hpp"
#include "webhookdb/pagination.hpp"

namespace webhookdb {
namespace {

TEST(JsonPath, FollowsObjectKeys) {
  const auto doc = nlohmann::json::parse(R"({"a":{"b":{"c":1}},"n":null})");
  ASSERT_NE(json_at(doc, {"a", "b", "c"}), nullptr);
  EXPECT_EQ(*json_at(doc, {"a", "b", "c"}), 1);
  EXPECT_EQ(json_at(doc, {}), &doc);
  EXPECT_EQ(json_at(doc, {"a", "x"}), nullptr);
  EXPECT_EQ(json_at(doc, {"a", "b", "c", "d"}), nullptr);
  ASSERT_NE(json_at(doc, {"n"}), nullptr);  // present but null is not missing
  EXPECT_TRUE(json_at(doc, {"n"})->is_null());
}

// The paginators' json_at used to stop at arrays while Column's dig indexed
// them; the one function indexes, so a paginator's path may too.
TEST(JsonPath, IndexesArraysWithDecimalSteps) {
  const auto doc = nlohmann::json::parse(R"({"data":[{"id":"a"},{"id":"b"}]})");
  ASSERT_NE(json_at(doc, {"data", "1", "id"}), nullptr);
  EXPECT_EQ(*json_at(doc, {"data", "1", "id"}), "b");
  EXPECT_EQ(json_at(doc, {"data", "2"}), nullptr);
  EXPECT_EQ(json_at(doc, {"data", "-1"}), nullptr);
  EXPECT_EQ(json_at(doc, {"data", "x"}), nullptr);
  EXPECT_EQ(json_at(doc, {"data", ""}), nullptr);
  EXPECT_EQ(json_at(doc, {"data", "99999999999999999999"}), nullptr);
  // An object key that looks like a number is still a key.
  const auto keyed = nlohmann::json::parse(R"({"0":"zero"})");
  EXPECT_EQ(*json_at(keyed, {"0"}), "zero");
}

TEST(JsonPath, PaginationReadsThroughTheSameFunction) {
  const auto body = nlohmann::json::parse(R"({"pages":[{"next":"c2"}]})");
  pagination::JsonPath path = {"pages", "0", "next"};
  ASSERT_NE(json_at(body, path), nullptr);
  EXPECT_EQ(*json_at(body, path), "c2");
}

}  // namespace
}  // namespace webhookdb
