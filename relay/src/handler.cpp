#include "lanrelay/relay/handler.hpp"

#include "lanrelay/relay/catalog_signer.hpp"
#include "lanrelay/relay/mirror_service.hpp"
#include "lanrelay/relay/parent_chain.hpp"
#include "lanrelay/relay/monitor.hpp"

#include "lanrelay/base/log.hpp"
#include "lanrelay/base/text_format.hpp"
#include "lanrelay/base/version.hpp"
#include "lanrelay/content/partial_items.hpp"
#include "lanrelay/relay/range.hpp"
#include "lanrelay/relay/request_target.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include <cstdio>
#include <exception>
#include <optional>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace lanrelay::relay {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;

constexpr std::string_view server_name = "lanrelay";
constexpr std::string_view allowed_methods = "GET, HEAD";

// The target as log text: anything but printable ASCII becomes \xNN.
std::string printable(std::string_view text) {
  constexpr std::size_t max_logged = 256;
  std::string out;
  for (const char c : text.substr(0, max_logged)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') {
      out += "\\x";
      append_hex(out, u);
    } else {
      out += c;
    }
  }
  return out;
}

// RFC 9112 §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive".
bool wants_keep_alive(const http::request_header<>& request) {
  bool close = false;
  bool keep_alive = false;
  for (auto [it, last] = request.equal_range(http::field::connection); it != last; ++it) {
    for (const auto& token : http::token_list{it->value()}) {
      close = close || boost::beast::iequals(token, "close");
      keep_alive = keep_alive || boost::beast::iequals(token, "keep-alive");
    }
  }
  if (close) {
    return false;
  }
  return request.version() >= 11 || keep_alive;
}

// Every value of a field that may be repeated, joined as one list (RFC 9110 §5.3).
std::optional<std::string> field_list(const http::request_header<>& request, http::field name) {
  auto [first, last] = request.equal_range(name);
  if (first == last) {
    return std::nullopt;
  }
  std::string out;
  for (auto it = first; it != last; ++it) {
    if (!out.empty()) {
      out += ", ";
    }
    out.append(it->value().data(), it->value().size());
  }
  return out;
}

http::response_header<> base_header(http::status status, const http::request_header<>& request) {
  http::response_header<> h;
  h.version(request.version());
  h.result(status);
  h.set(http::field::server, server_name);
  return h;
}

small_response text_response(http::status status, const http::request_header<>& request,
                             std::string_view content_type, std::string body) {
  small_response res{base_header(status, request)};
  res.set(http::field::content_type, content_type);
  res.body() = std::move(body);
  res.prepare_payload();
  res.keep_alive(wants_keep_alive(request));
  if (request.method() == http::verb::head) {
    res.body().clear();  // Content-Length keeps the GET length
  }
  return res;
}

// Monitoring and admin endpoints: their methods, and which of them change anything.
bool is_monitoring_endpoint(resource_kind resource) {
  switch (resource) {
    case resource_kind::stats:
    case resource_kind::mirror_status:
    case resource_kind::mirror_sync:
    case resource_kind::status_page:
    case resource_kind::status:
    case resource_kind::metrics:
    case resource_kind::log_level:
      return true;
    default:
      return false;
  }
}

// The admin verb of an endpoint (PUT /-/log-level, POST /-/mirror/sync), none for read-only ones.
std::optional<http::verb> admin_method(resource_kind resource) {
  if (resource == resource_kind::log_level) {
    return http::verb::put;
  }
  if (resource == resource_kind::mirror_sync) {
    return http::verb::post;
  }
  return std::nullopt;
}

// Endpoints that answer GET and HEAD (everything but a sync, which only starts with POST).
bool is_readable(resource_kind resource) { return resource != resource_kind::mirror_sync; }

// Admin endpoints whose request carries an argument in its body.
bool takes_body(resource_kind resource) { return resource == resource_kind::log_level; }


std::string_view trim(std::string_view text) { return lanrelay::trim(text, ascii_whitespace); }

std::string client_text(const request_context& context) {
  return context.client ? context.client->to_string() : std::string("unknown");
}

// Mirrored files, offered like cached items (docs/protocol.md).
std::vector<mirrored_item> mirrored_items(const mirror_service* mirrors) {
  return mirrors != nullptr ? mirrors->items() : std::vector<mirrored_item>{};
}

std::string catalog_json(content_store& store, const mirror_service* mirrors) {
  boost::json::array items;
  for (const item& it : store.list()) {
    boost::json::object o;
    o["kind"] = to_string(it.key.kind);
    o["name"] = it.key.name;
    o["version"] = it.key.version;
    o["size"] = it.size;
    o["sha256"] = to_hex(it.sha256);
    o["url"] = cache_path(it.key);
    items.push_back(std::move(o));
  }
  for (const mirrored_item& m : mirrored_items(mirrors)) {
    boost::json::object o;
    o["kind"] = to_string(m.entry.key.kind);
    o["name"] = m.entry.key.name;
    o["version"] = m.entry.key.version;
    o["size"] = m.entry.size;
    o["sha256"] = to_hex(m.entry.sha256);
    o["url"] = m.url_path;
    items.push_back(std::move(o));
  }
  boost::json::object root;
  root["items"] = std::move(items);
  return boost::json::serialize(root);
}

}  // namespace

small_response request_handler::error_response(http::status status, unsigned version,
                                               std::string_view text) {
  small_response res{status, version};
  res.set(http::field::server, server_name);
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.body() = std::string(text) + "\n";
  res.prepare_payload();
  res.keep_alive(false);
  return res;
}

response_plan request_handler::handle(const http::request_header<>& request,
                                      const request_context& context) {
  const parsed_target target = parse_request_target(request.target());
  return handle(request, target, context);
}

response_plan request_handler::handle(const http::request_header<>& request,
                                      const parsed_target& target,
                                      const request_context& context) {
  counters_.requests.fetch_add(1, std::memory_order_relaxed);

  if (target.verdict == target_verdict::bad_request) {
    counters_.bad_requests.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("event=bad_request reason=\"{}\" target=\"{}\"", target.reason,
                  printable(request.target()));
    return text_response(http::status::bad_request, request, "text/plain; charset=utf-8",
                         "bad request target: " + std::string(target.reason) + "\n");
  }
  if (target.verdict == target_verdict::not_found) {
    return text_response(http::status::not_found, request, "text/plain; charset=utf-8",
                         "not found\n");
  }
  if (is_monitoring_endpoint(target.resource)) {
    return serve_monitoring(request, target, context);
  }
  if (request.method() != http::verb::get && request.method() != http::verb::head) {
    counters_.bad_requests.fetch_add(1, std::memory_order_relaxed);
    auto res = text_response(http::status::method_not_allowed, request,
                             "text/plain; charset=utf-8", "only GET and HEAD are served\n");
    res.set(http::field::allow, allowed_methods);
    return res;
  }

  switch (target.resource) {
    case resource_kind::healthz:
      if (draining_.load(std::memory_order_relaxed)) {
        return text_response(http::status::service_unavailable, request,
                             "text/plain; charset=utf-8", "stopping");
      }
      return text_response(http::status::ok, request, "text/plain; charset=utf-8", "ok");
    case resource_kind::catalog:
      return text_response(http::status::ok, request, "application/json",
                           catalog_json(store_, settings_.mirrors));
    case resource_kind::signed_catalog:
      if (settings_.signer == nullptr) {
        return text_response(http::status::not_found, request, "text/plain; charset=utf-8",
                             "this relay has no site key\n");
      }
      {
        std::vector<item> extra;
        for (auto& m : mirrored_items(settings_.mirrors)) {
          extra.push_back(std::move(m.entry));
        }
        return text_response(http::status::ok, request, "application/json",
                             settings_.signer->sign(store_, extra, &pieces_));
      }
    case resource_kind::piece_list:
      if (const auto list = pieces_.find(store_, target.sha256)) {
        return text_response(http::status::ok, request, "application/octet-stream",
                             std::string(reinterpret_cast<const char*>(list->encoded.data()),
                                         list->encoded.size()));
      }
      if (const auto partial = read_partial_item(store_.dir(), target.sha256)) {
        return text_response(
            http::status::ok, request, "application/octet-stream",
            std::string(reinterpret_cast<const char*>(partial->encoded_pieces.data()),
                        partial->encoded_pieces.size()));
      }
      return text_response(http::status::not_found, request, "text/plain; charset=utf-8",
                           "no piece list: this server holds no item with that SHA-256\n");
    case resource_kind::piece_have:
      return serve_have(request, target.sha256);
    case resource_kind::mirror_file:
      return serve_mirror_file(request, target, context);
    case resource_kind::cache_item:
      break;
    case resource_kind::stats:
    case resource_kind::mirror_status:
    case resource_kind::mirror_sync:
    case resource_kind::status_page:
    case resource_kind::status:
    case resource_kind::metrics:
    case resource_kind::log_level:
      break;  // served by serve_monitoring
  }
  return serve_item(request, target.key, context);
}

// Monitoring and admin endpoints.

std::size_t request_handler::accepts_body(const http::request_header<>& request,
                                          const parsed_target& target) {
  if (target.verdict != target_verdict::ok || !is_monitoring_endpoint(target.resource)) {
    return 0;
  }
  const auto verb = admin_method(target.resource);
  return takes_body(target.resource) && verb && request.method() == *verb ? max_body_size : 0;
}

std::optional<small_response> request_handler::authorize(resource_kind resource, bool changing,
                                                         const http::request_header<>& request,
                                                         const request_context& context) const {
  const auto policy = access_.load();
  const auto authorization = request[http::field::authorization];
  const access_decision decision =
      !changing                                 ? policy->monitoring(context.origin())
      : resource == resource_kind::mirror_sync ? policy->mirror_sync(context.origin(), authorization)
                                                : policy->admin(context.origin(), authorization);
  if (decision.allowed) {
    return std::nullopt;
  }
  spdlog::info("event=access_refused client={} target=\"{}\" access={} status={}",
               client_text(context), printable(request.target()), changing ? "admin" : "read",
               static_cast<unsigned>(decision.status));
  auto res = text_response(decision.status, request, "text/plain; charset=utf-8",
                           decision.message + "\n");
  if (decision.challenge) {
    res.set(http::field::www_authenticate, "Bearer realm=\"lanrelay\"");
  }
  return res;
}

response_plan request_handler::serve_monitoring(const http::request_header<>& request,
                                                const parsed_target& target,
                                                const request_context& context) {
  const resource_kind resource = target.resource;
  const auto admin_verb = admin_method(resource);
  const bool reading = is_readable(resource) && (request.method() == http::verb::get ||
                                                  request.method() == http::verb::head);
  const bool changing = admin_verb && request.method() == *admin_verb;
  if (!reading && !changing) {
    counters_.bad_requests.fetch_add(1, std::memory_order_relaxed);
    std::string allow = is_readable(resource) ? std::string(allowed_methods) : std::string();
    if (admin_verb) {
      allow += (allow.empty() ? "" : ", ") + std::string(http::to_string(*admin_verb));
    }
    auto res = text_response(http::status::method_not_allowed, request,
                             "text/plain; charset=utf-8", "allowed methods: " + allow + "\n");
    res.set(http::field::allow, allow);
    return res;
  }
  if (auto refused = authorize(resource, changing, request, context)) {
    return std::move(*refused);
  }

  if (resource == resource_kind::stats) {
    return text_response(http::status::ok, request, "application/json",
                         to_json(take_snapshot(counters_, slots_)));
  }
  if (resource == resource_kind::mirror_status) {
    return text_response(
        http::status::ok, request, "application/json",
        boost::json::serialize(to_json(settings_.mirrors != nullptr
                                           ? settings_.mirrors->status()
                                           : std::vector<mirror_source_view>{})));
  }
  if (resource == resource_kind::mirror_sync) {
    if (settings_.mirrors == nullptr ||
        (!target.mirror_source.empty() &&
         settings_.mirrors->lookup(target.mirror_source, "server.ini").verdict ==
             mirror_lookup_verdict::unknown_source)) {
      return text_response(http::status::not_found, request, "text/plain; charset=utf-8",
                           "no mirror source of that name\n");
    }
    spdlog::info("event=mirror_sync_requested source={} client={}",
                 target.mirror_source.empty() ? "all" : target.mirror_source,
                 client_text(context));
    return awaited_response{
        [this, request, source = target.mirror_source, context] {
          return sync_then_report(request, source, context);
        },
        false};
  }
  if (resource == resource_kind::log_level) {
    if (!changing) {
      return text_response(http::status::ok, request, "text/plain; charset=utf-8",
                           std::string(current_log_level()) + "\n");
    }
    const std::string wanted(trim(context.body));
    const auto level = spdlog::level::from_str(wanted);
    if (level == spdlog::level::off && wanted != "off") {
      return text_response(http::status::bad_request, request, "text/plain; charset=utf-8",
                           "\"" + printable(wanted) +
                               "\" is not a log level; send one of trace, debug, info, warn, "
                               "error, critical, off\n");
    }
    // The change itself is logged at the more verbose of the two levels, so it always shows.
    spdlog::set_level(std::min(spdlog::get_level(), level));
    spdlog::info("event=log_level_changed level={} client={}", wanted, client_text(context));
    spdlog::set_level(level);
    return text_response(http::status::ok, request, "text/plain; charset=utf-8",
                         "log level " + wanted + "\n");
  }
  if (settings_.monitoring == nullptr) {
    return text_response(http::status::not_found, request, "text/plain; charset=utf-8",
                         "monitoring is not available here\n");
  }
  switch (resource) {
    case resource_kind::status_page: {
      auto res = text_response(http::status::ok, request, "text/html; charset=utf-8",
                               render_status_page(settings_.monitoring->report()));
      // The page needs nothing but itself: no script, no outside resource.
      res.set("Content-Security-Policy",
              "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'");
      res.set(http::field::cache_control, "no-store");
      return res;
    }
    case resource_kind::status: {
      auto res = text_response(http::status::ok, request, "application/json",
                               to_json(settings_.monitoring->report()));
      res.set(http::field::cache_control, "no-store");
      return res;
    }
    case resource_kind::metrics:
      return text_response(http::status::ok, request, metrics::content_type,
                           settings_.monitoring->render_metrics());
    default:
      return text_response(http::status::not_found, request, "text/plain; charset=utf-8",
                           "not found\n");
  }
}

namespace {

small_response mirror_sync_response(
    const http::request_header<>& request,
    const std::vector<std::pair<std::string, sync_result>>& results) {
  boost::json::array out;
  bool all_ok = true;
  for (const auto& [name, r] : results) {
    auto o = to_json(r);
    o["source"] = name;
    out.push_back(std::move(o));
    all_ok = all_ok && r.ok();
  }
  // 502: the relay is fine, an upstream (or the disk) was not.
  auto res = text_response(all_ok ? http::status::ok : http::status::bad_gateway, request,
                           "application/json",
                           boost::json::serialize(boost::json::object{{"results", std::move(out)}}));
  res.keep_alive(false);
  return res;
}

// A plan decided after the awaited work: never another awaited response (the work's outcome is
// in the context, so the decision cannot ask for the same work again).
ready_plan to_ready(response_plan plan) {
  if (auto* response = std::get_if<small_response>(&plan)) {
    return std::move(*response);
  }
  if (auto* transfer = std::get_if<file_transfer>(&plan)) {
    return std::move(*transfer);
  }
  std::terminate();  // broken invariant: see above
}

}  // namespace

net::awaitable<ready_plan> request_handler::sync_then_report(http::request_header<> request,
                                                             std::string source,
                                                             request_context context) {
  std::vector<std::pair<std::string, sync_result>> results;
  auto names = source.empty() ? settings_.mirrors->source_names() : std::vector{source};
  for (const auto& name : names) {
    spdlog::info("event=mirror_sync_requested name={} peer={}", name, client_text(context));
    auto r = co_await settings_.mirrors->sync_now(name);
    results.emplace_back(name, r ? std::move(*r) : sync_result{.error = "no such source"});
  }
  ready_plan response = mirror_sync_response(request, results);
  co_return response;
}

net::awaitable<ready_plan> request_handler::pull_then_serve(http::request_header<> request,
                                                            parsed_target target,
                                                            request_context context) {
  // Bounded by mirror.pull_through_wait; every request for the same file joins one download,
  // which stops when nobody waits for it any more.
  auto outcome = co_await settings_.mirrors->pull_through(target.mirror_source, target.mirror_path);
  context.pull = std::move(outcome);
  auto plan = serve_mirror_file(request, target, context);
  ready_plan ready = to_ready(std::move(plan));
  co_return ready;
}

net::awaitable<ready_plan> request_handler::pull_from_parent_then_serve(
    http::request_header<> request, item_key key, request_context context) {
  // Bounded by discovery.parent_pull_wait; every request for the same item joins one download.
  auto outcome = co_await settings_.parents->pull(key);
  context.pull = std::move(outcome);
  auto plan = serve_item(request, key, context);
  ready_plan ready = to_ready(std::move(plan));
  co_return ready;
}

response_plan request_handler::serve_mirror_file(const http::request_header<>& request,
                                                 const parsed_target& target,
                                                 const request_context& context) {
  const std::optional<pull_outcome>& pull = context.pull;
  const auto found = settings_.mirrors != nullptr
                         ? settings_.mirrors->lookup(target.mirror_source, target.mirror_path)
                         : mirror_lookup{mirror_lookup_verdict::unknown_source};
  switch (found.verdict) {
    case mirror_lookup_verdict::unknown_source:
      return text_response(http::status::not_found, request, "text/plain; charset=utf-8",
                           "no mirror source of that name\n");
    case mirror_lookup_verdict::not_listed:
      return text_response(http::status::not_found, request, "text/plain; charset=utf-8",
                           "not in the mirrored index\n");
    case mirror_lookup_verdict::not_admitted:
      return text_response(http::status::not_found, request, "text/plain; charset=utf-8",
                           "left out by the source's include and not admitted by its "
                           "pull_through: this relay does not fetch it on demand\n");
    case mirror_lookup_verdict::pullable:
      if (!pull) {
        request_context waiting = context;
        waiting.body = {};  // GET and HEAD only: no body to keep
        return awaited_response{[this, request, target, waiting] {
                                  return pull_then_serve(request, target, waiting);
                                },
                                true};
      }
      if (pull->verdict == pull_verdict::refused) {
        return text_response(http::status::not_found, request, "text/plain; charset=utf-8",
                             pull->reason + "\n");
      }
      {
        auto res = text_response(
            http::status::service_unavailable, request, "text/plain; charset=utf-8",
            (pull->reason.empty() ? std::string("the relay is still fetching this file from "
                                                "upstream; retry later")
                                  : pull->reason) +
                "\n");
        res.set(http::field::retry_after,
                std::to_string(pull->retry_after.count() > 0
                                   ? pull->retry_after.count()
                                   : retry_after_.load(std::memory_order_relaxed)));
        return res;
      }
    case mirror_lookup_verdict::served:
      break;
  }
  const int fd = ::open(found.file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    // Pruned or replaced between the lookup and the open: the agent retries.
    return text_response(http::status::not_found, request, "text/plain; charset=utf-8",
                         "not in the mirrored index\n");
  }
  struct ::stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return text_response(http::status::not_found, request, "text/plain; charset=utf-8",
                         "not in the mirrored index\n");
  }
  item info;
  info.size = static_cast<std::uint64_t>(st.st_size);
  std::string etag;
  if (found.sha256 && found.size == info.size) {
    etag = make_etag(*found.sha256);
  } else {
    // No digest (server.ini, a .sig, a file not hashed yet): size and modification time.
    const auto mtime = static_cast<std::uint64_t>(st.st_mtim.tv_sec) * 1'000'000'000ULL +
                       static_cast<std::uint64_t>(st.st_mtim.tv_nsec);
    char text[64];
    std::snprintf(text, sizeof text, "\"%llx-%llx\"", static_cast<unsigned long long>(info.size),
                  static_cast<unsigned long long>(mtime));
    etag = text;
  }
  // The index changes under the same URL with every release: an HTTP cache between two levels
  // of relays (nginx proxy_cache, squid) must ask again each time instead of serving its copy
  // for however long it keeps 200s. The listed files keep their bytes under their path.
  const bool is_index = target.mirror_path == "server.ini";
  return serve_file(request, item_file{fd, std::move(info)}, etag,
                    is_index ? "text/plain; charset=utf-8" : "application/octet-stream",
                    mirror_path(target.mirror_source, target.mirror_path), context,
                    is_index ? "no-cache" : "");
}

response_plan request_handler::serve_item(const http::request_header<>& request,
                                          const item_key& key,
                                          const request_context& context) {
  auto file = store_.open_item(key);
  if (!file) {
    if (file.error() == errc::not_found) {
      if (auto partial = find_partial(key)) {
        return serve_partial(request, std::move(*partial), context);
      }
      if (settings_.parents != nullptr && !context.pull && settings_.parents->offered(key)) {
        request_context waiting = context;
        waiting.body = {};
        return awaited_response{[this, request, key, waiting] {
                                  return pull_from_parent_then_serve(request, key, waiting);
                                },
                                true};
      }
      if (context.pull && context.pull->verdict != pull_verdict::refused &&
          context.pull->verdict != pull_verdict::served) {
        auto res = text_response(http::status::service_unavailable, request,
                                 "text/plain; charset=utf-8", context.pull->reason + "\n");
        res.set(http::field::retry_after,
                std::to_string(retry_after_.load(std::memory_order_relaxed)));
        return res;
      }
      return text_response(http::status::not_found, request, "text/plain; charset=utf-8",
                           "not cached here\n");
    }
    spdlog::error("event=cache_read_error item={} error=\"{}\" hint=\"check the cache directory\"",
                  cache_path(key), file.error().message());
    return text_response(http::status::internal_server_error, request,
                         "text/plain; charset=utf-8", "cannot read the cached item\n");
  }
  const std::string etag = make_etag(file->info().sha256);
  return serve_file(request, std::move(*file), etag, "application/octet-stream", cache_path(key),
                    context);
}

std::optional<partial_item> request_handler::find_partial(const item_key& key) {
  for (auto& partial : find_partial_items(store_.dir(), key.kind, key.name)) {
    if (partial.key.version == key.version) {
      return std::move(partial);
    }
  }
  return std::nullopt;
}

response_plan request_handler::serve_have(const http::request_header<>& request,
                                          const sha256_digest& sha256) {
  if (const auto list = pieces_.find(store_, sha256)) {
    const auto parsed = parse_piece_list(list->encoded);
    if (parsed) {
      const piece_bitfield all(parsed->pieces.size(), true);
      return text_response(http::status::ok, request, "application/octet-stream",
                           std::string(reinterpret_cast<const char*>(all.bytes().data()),
                                       all.bytes().size()));
    }
  }
  if (const auto partial = read_partial_item(store_.dir(), sha256)) {
    return text_response(http::status::ok, request, "application/octet-stream",
                         std::string(reinterpret_cast<const char*>(partial->have.bytes().data()),
                                     partial->have.bytes().size()));
  }
  return text_response(http::status::not_found, request, "text/plain; charset=utf-8",
                       "this server holds no piece of that SHA-256\n");
}

// An item this peer is still downloading: only byte ranges within the pieces it has verified, so
// only Range requests; the rest of the decisions are serve_file's.
response_plan request_handler::serve_partial(const http::request_header<>& request,
                                             partial_item partial,
                                             const request_context& context) {
  const auto label = cache_path(partial.key);
  const std::uint64_t size = partial.pieces.item_size;
  const auto refuse = [&](std::string text) {
    small_response res{base_header(http::status::range_not_satisfiable, request)};
    res.set(http::field::content_range, "bytes */" + std::to_string(size));
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = std::move(text);
    res.prepare_payload();
    res.keep_alive(wants_keep_alive(request));
    return res;
  };
  const auto range_field = field_list(request, http::field::range);
  if (!range_field) {
    return text_response(http::status::not_found, request, "text/plain; charset=utf-8",
                         "not cached here: this peer is still downloading the item and serves "
                         "only byte ranges of the pieces it holds (GET /-/have/" +
                             to_hex(partial.sha256) + ")\n");
  }
  const auto range = parse_range(*range_field, size);
  if (range.verdict != range_verdict::satisfiable ||
      !partial.have.covers(partial.pieces, range.first, range.length)) {
    return refuse("this peer does not hold every piece of that range yet (" +
                  std::to_string(partial.have.held()) + " of " +
                  std::to_string(partial.pieces.pieces.size()) + " pieces; GET /-/have/" +
                  to_hex(partial.sha256) + ")\n");
  }
  auto fd = open_partial_data(store_.dir(), partial.sha256);
  if (!fd) {
    return text_response(http::status::not_found, request, "text/plain; charset=utf-8",
                         "not cached here\n");
  }
  item info;
  info.key = partial.key;
  info.size = size;
  info.sha256 = partial.sha256;
  return serve_file(request, item_file{fd.release(), std::move(info)}, make_etag(partial.sha256),
                    "application/octet-stream", label, context);
}

response_plan request_handler::serve_file(const http::request_header<>& request, item_file file,
                                          const std::string& etag, std::string_view content_type,
                                          std::string_view label,
                                          const request_context& context,
                                          std::string_view cache_control) {
  const std::uint64_t size = file.info().size;

  if (auto if_match = field_list(request, http::field::if_match);
      if_match && !etag_list_matches(*if_match, etag, etag_comparison::strong)) {
    auto res = text_response(http::status::precondition_failed, request,
                             "text/plain; charset=utf-8", "the item has changed\n");
    res.set(http::field::etag, etag);
    return res;
  }

  if (auto if_none_match = field_list(request, http::field::if_none_match);
      if_none_match && etag_list_matches(*if_none_match, etag, etag_comparison::weak)) {
    small_response res{base_header(http::status::not_modified, request)};
    res.set(http::field::etag, etag);
    if (!cache_control.empty()) {
      res.set(http::field::cache_control, cache_control);
    }
    res.keep_alive(wants_keep_alive(request));
    return res;  // no Content-Length: a 304 has no body
  }

  range_result range;
  if (request.method() == http::verb::get) {
    if (auto range_field = field_list(request, http::field::range)) {
      range = parse_range(*range_field, size);
      if (auto if_range = field_list(request, http::field::if_range);
          if_range && !if_range_matches(*if_range, etag)) {
        range = range_result{};
      }
    }
  }

  if (range.verdict == range_verdict::unsatisfiable) {
    small_response res{base_header(http::status::range_not_satisfiable, request)};
    res.set(http::field::content_range, "bytes */" + std::to_string(size));
    res.set(http::field::etag, etag);
    res.set(http::field::accept_ranges, "bytes");
    res.content_length(0);
    res.keep_alive(wants_keep_alive(request));
    return res;
  }

  const bool partial = range.verdict == range_verdict::satisfiable;
  const std::uint64_t offset = partial ? range.first : 0;
  const std::uint64_t length = partial ? range.length : size;
  http::response_header<> head =
      base_header(partial ? http::status::partial_content : http::status::ok, request);
  head.set(http::field::content_type, content_type);
  head.set(http::field::etag, etag);
  head.set(http::field::accept_ranges, "bytes");
  if (!cache_control.empty()) {
    head.set(http::field::cache_control, cache_control);
  }
  if (partial) {
    head.set(http::field::content_range, content_range(range, size));
  }

  if (request.method() == http::verb::head || length == 0) {
    small_response res{std::move(head)};
    res.content_length(length);
    res.keep_alive(wants_keep_alive(request));
    return res;
  }

  slot_pool::refusal refused = slot_pool::refusal::none;
  auto slot = slots_.try_acquire(context.client, &refused);
  if (!slot) {
    const bool share = refused == slot_pool::refusal::client_share;
    spdlog::debug("event={} item={} client={} slots={} per_client={}",
                  share ? "refused_client_share" : "refused_busy", label, client_text(context),
                  slots_.capacity(), slots_.per_client());
    auto res = text_response(http::status::service_unavailable, request,
                             "text/plain; charset=utf-8",
                             share ? "this client already holds its share of the transfer slots; "
                                     "retry after one of its downloads ends\n"
                                   : "every transfer slot is busy; retry later or use another "
                                     "relay\n");
    res.set(http::field::retry_after,
            std::to_string(retry_after_.load(std::memory_order_relaxed)));
    res.keep_alive(false);
    return res;
  }

  file_transfer transfer{http::response<http::empty_body>{std::move(head)}, std::move(file),
                         offset, length, std::move(*slot), std::string(label)};
  transfer.head.content_length(length);
  transfer.head.keep_alive(wants_keep_alive(request));
  return transfer;
}

}  // namespace lanrelay::relay
