#include "api_server/page_links.hpp"

#include <algorithm>

#include "webhookdb/url.hpp"

namespace webhookdb::tools {

std::string page_links(std::string_view base_path, const std::vector<std::pair<std::string, std::string>>& query,
                       long long page, long long last) {
  std::string prefix = std::string(base_path) + "?";
  for (const auto& [name, value] : query) {
    if (name != "page") prefix += url::percent_encode(name) + "=" + url::percent_encode(value) + "&";
  }
  const auto link = [&](long long n, std::string_view rel) {
    return "<" + prefix + "page=" + std::to_string(n) + ">; rel=\"" + std::string(rel) + "\"";
  };
  std::vector<std::string> links;
  if (page > 1) links.push_back(link(std::min(page - 1, std::max(1LL, last)), "prev"));
  if (page < last) {
    links.push_back(link(page + 1, "next"));
    links.push_back(link(last, "last"));
  }
  if (page > 1) links.push_back(link(1, "first"));
  std::string value;
  for (const auto& l : links) value += (value.empty() ? "" : ", ") + l;
  return value;
}

}  // namespace webhookdb::tools
