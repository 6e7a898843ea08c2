// webhookdb-worker: the worker process, serving the demo replicators
// (src/jobs/demo_replicators.hpp) over libcurl. A host builds its own binary
// the same way with its own registration hook (see worker_main.hpp).

#include "jobs/demo_replicators.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/jobs/worker_main.hpp"

int main(int argc, char** argv) {
  webhookdb::jobs::WorkerHooks hooks;
  hooks.register_replicators = [](webhookdb::Registry& registry, const webhookdb::jobs::WorkerSettings& settings) {
    webhookdb::jobs::demo::register_demo_replicators(registry, settings.api_url);
  };
  hooks.http_client = [](const webhookdb::jobs::WorkerSettings&) -> std::shared_ptr<webhookdb::HttpClient> {
    webhookdb::curl::CurlOptions options;
    options.user_agent = "webhookdb-worker";
    return webhookdb::curl::make_curl_client(options);
  };
  return webhookdb::jobs::worker_main(argc, argv, hooks);
}
