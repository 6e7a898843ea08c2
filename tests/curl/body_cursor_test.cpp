// pagination::BodyCursor over real HTTP: a loopback server playing HubSpot's
// CRM search (POST, the cursor in the JSON body, paging.next.after in the
// response) walked to its end by the curl client. The pure tests of the
// style are in tests/core/pagination_test.cpp.

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/mini_server.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/pagination.hpp"

namespace webhookdb::curl {
namespace {

using test::MiniRequest;
using test::MiniResponse;
using test::MiniServer;

constexpr int kContacts = 250;

// POST /crm/v3/objects/contacts/search: ids 1..kContacts, `after` an offset.
MiniResponse hubspot_search(const MiniRequest& request) {
  if (request.method != "POST" || request.target != "/crm/v3/objects/contacts/search") {
    return MiniResponse{405, {{"Content-Type", "application/json"}}, R"({"status":"error"})", {}};
  }
  const auto body = nlohmann::json::parse(request.body, nullptr, false);
  if (!body.is_object() || !body.contains("filterGroups")) {
    return MiniResponse{400, {{"Content-Type", "application/json"}}, R"({"status":"error"})", {}};
  }
  const int limit = body.value("limit", 10);
  const int after = body.contains("after") ? std::stoi(body.at("after").get<std::string>()) : 0;
  nlohmann::json page{{"total", kContacts}, {"results", nlohmann::json::array()}};
  for (int id = after + 1; id <= std::min(kContacts, after + limit); ++id) {
    page["results"].push_back(
        {{"id", std::to_string(id)}, {"properties", {{"hs_object_id", std::to_string(id)}}}});
  }
  if (after + limit < kContacts) page["paging"] = {{"next", {{"after", std::to_string(after + limit)}}}};
  return MiniResponse{200, {{"Content-Type", "application/json"}}, page.dump(), {}};
}

TEST(BodyCursorWalk, WalksAHubSpotStyleSearchOverLoopbackHttpOnce) {
  MiniServer server(hubspot_search);
  CurlOptions options;
  options.connect_timeout = std::chrono::milliseconds(2000);
  options.timeout = std::chrono::milliseconds(5000);
  auto http = make_curl_client(options);
  pagination::BodyCursor pages{{.limit = 100}};
  const HttpRequest first{.method = "POST",
                          .url = server.url("/crm/v3/objects/contacts/search"),
                          .body = R"({"filterGroups":[],"properties":["email"]})"};

  std::vector<std::string> ids;
  std::string token;
  int fetched = 0;
  do {
    const auto page = pages.fetch(*http, first, token);
    ASSERT_TRUE(page.items.is_array());
    for (const auto& item : page.items) ids.push_back(item.at("id").get<std::string>());
    token = page.next;
  } while (!token.empty() && ++fetched < 10);

  ASSERT_EQ(ids.size(), static_cast<std::size_t>(kContacts));
  for (int i = 0; i < kContacts; ++i) ASSERT_EQ(ids[static_cast<std::size_t>(i)], std::to_string(i + 1));
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3U);
  for (const auto& request : requests) {
    EXPECT_EQ(request.method, "POST");
    EXPECT_EQ(find_header(request.headers, "Content-Type"), "application/json");
  }
  EXPECT_FALSE(nlohmann::json::parse(requests[0].body).contains("after"));
  EXPECT_EQ(nlohmann::json::parse(requests[2].body).at("after"), "200");
  EXPECT_EQ(nlohmann::json::parse(requests[2].body).at("properties"), nlohmann::json::array({"email"}));
}

}  // namespace
}  // namespace webhookdb::curl
