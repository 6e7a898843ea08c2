#pragma once
// GitHub-style Link headers for the page-number endpoint (/pages): rel="next"
// and rel="last" (rel="prev" and rel="first" after the first page), each the
// request's URL with its other parameters in their order and page=N last.
// So a pagination::LinkHeader walk of /pages knows every page ahead (issue 19
// item 4: concurrent page fetching), like a walk of GitHub's issues.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace webhookdb::tools {

// The Link header value for `page` of `last` pages of `base_path` (scheme,
// host and path) asked with `query`; empty when there is no other page.
[[nodiscard]] std::string page_links(std::string_view base_path,
                                     const std::vector<std::pair<std::string, std::string>>& query, long long page,
                                     long long last);

}  // namespace webhookdb::tools
