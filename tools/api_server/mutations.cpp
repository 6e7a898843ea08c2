#include "api_server/mutations.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <charconv>
#include <ctime>
#include <stdexcept>

namespace webhookdb::tools::mutations {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

std::string error(std::string_view message) {
  return nlohmann::json{{"error", {{"type", "invalid_request_error"}, {"message", message}}}}.dump();
}

struct Origin {
  std::string host;
  std::string port;
  std::string target;
};

// Only plain HTTP to the loopback: the server is a test tool, and a webhook
// URL from a query string must not make it a relay to anywhere.
Origin loopback_origin(const std::string& url) {
  constexpr std::string_view scheme = "http://";
  if (url.rfind(scheme, 0) != 0) throw std::invalid_argument("webhook URL must be http://127.0.0.1:<port>/...");
  const std::string rest = url.substr(scheme.size());
  const auto slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  Origin o;
  o.target = slash == std::string::npos ? "/" : rest.substr(slash);
  const auto colon = authority.rfind(':');
  o.host = authority.substr(0, colon);
  o.port = colon == std::string::npos ? "80" : authority.substr(colon + 1);
  if (o.host != "127.0.0.1" && o.host != "localhost") {
    throw std::invalid_argument("webhook URL must be on 127.0.0.1 or localhost");
  }
  return o;
}

std::optional<std::int64_t> integer(const std::optional<std::string>& text) {
  if (!text || text->empty()) return std::nullopt;
  std::int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc{} || ptr != text->data() + text->size()) return std::nullopt;
  return v;
}

}  // namespace

nlohmann::json event(const Dataset& dataset, std::size_t index, Mutation mutation) {
  nlohmann::json object = dataset.object(index);
  const std::int64_t updated = dataset.updated(index);
  if (mutation == Mutation::deleted) object["deleted"] = true;
  return nlohmann::json{{"id", "evt_" + dataset.id(index) + "_" + std::to_string(updated)},
                        {"object", "event"},
                        {"type", mutation == Mutation::deleted ? "charge.deleted" : "charge.updated"},
                        {"created", updated},
                        {"data", {{"object", std::move(object)}}}};
}

int post_webhook(const std::string& url, const std::string& body) {
  const Origin o = loopback_origin(url);
  try {
    boost::asio::io_context io;
    tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(10));
    stream.connect(resolver.resolve(o.host, o.port));
    http::request<http::string_body> req{http::verb::post, o.target, 11};
    req.set(http::field::host, o.host + ":" + o.port);
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    return static_cast<int>(res.result_int());
  } catch (const std::exception& e) {
    throw std::runtime_error("posting the webhook to " + o.host + ":" + o.port + o.target + " failed: " + e.what());
  }
}

std::optional<Reply> handle(Dataset& dataset, std::string_view path, const ParamFn& param) {
  Mutation mutation{};
  if (path == "/admin/delete") {
    mutation = Mutation::deleted;
  } else if (path == "/admin/restore") {
    mutation = Mutation::restored;
  } else {
    return std::nullopt;
  }
  Reply r;
  const auto id = param("id");
  const auto index = id ? dataset.index_of(*id) : std::nullopt;
  if (!index) {
    r.status = 404;
    r.body = error("No such charge: '" + id.value_or("") + "'");
    return r;
  }
  const auto updated_param = param("updated");
  const auto updated = integer(updated_param);
  if (updated_param && !updated_param->empty() && !updated) {
    r.status = 400;
    r.body = error("updated must be unix seconds");
    return r;
  }
  const bool changed =
      dataset.set_deleted(*index, mutation == Mutation::deleted, updated.value_or(static_cast<std::int64_t>(std::time(nullptr))));
  int webhook_status = 0;
  if (const auto url = param("webhook"); url && !url->empty()) {
    try {
      webhook_status = post_webhook(*url, event(dataset, *index, mutation).dump());
    } catch (const std::invalid_argument& e) {
      r.status = 400;
      r.body = error(e.what());
      return r;
    } catch (const std::exception& e) {
      r.status = 502;
      r.body = error(e.what());
      return r;
    }
  }
  r.body = nlohmann::json{{"id", *id},
                          {"deleted", dataset.deleted(*index)},
                          {"updated", dataset.updated(*index)},
                          {"changed", changed},
                          {"webhook_status", webhook_status}}
               .dump();
  return r;
}

}  // namespace webhookdb::tools::mutations
