#include "lanrelay/relay/status.hpp"

#include "lanrelay/relay/mirror_service.hpp"
#include "lanrelay/relay/request_target.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>

namespace lanrelay::relay {
namespace {

namespace json = boost::json;

json::value time_or_null(const std::optional<std::chrono::system_clock::time_point>& t) {
  if (!t) {
    return nullptr;
  }
  return json::string(format_utc(*t));
}

std::int64_t seconds_between(std::chrono::system_clock::time_point from,
                             std::chrono::system_clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::seconds>(to - from).count();
}

}  // namespace

std::string to_json(const status_report& r) {
  json::object root;
  root["version"] = r.version;
  root["role"] = r.role;
  root["now"] = format_utc(r.now);
  root["started"] = format_utc(r.started);
  root["uptime_seconds"] = seconds_between(r.started, r.now);
  root["log_level"] = r.log_level;

  json::array items;
  for (const item& it : r.items) {
    items.push_back(json::object{{"kind", to_string(it.key.kind)},
                                 {"name", it.key.name},
                                 {"version", it.key.version},
                                 {"size", it.size},
                                 {"sha256", to_hex(it.sha256)},
                                 {"pinned", it.pinned},
                                 {"added", format_utc(it.added_at)},
                                 {"last_used", format_utc(it.last_used)},
                                 {"url", cache_path(it.key)}});
  }
  root["cache"] = json::object{{"item_count", r.items.size()},
                               {"bytes", r.cache_bytes},
                               {"max_bytes", r.cache_max_bytes},
                               {"items", std::move(items)}};

  json::array sources;
  for (const auto& m : r.mirrors) {
    json::object o;
    o["name"] = m.name;
    o["upstream"] = m.upstream;
    o["has_snapshot"] = m.status.has_snapshot;
    o["generation"] = m.status.generation;
    o["last_attempt"] = time_or_null(m.status.last_attempt);
    o["last_success"] = time_or_null(m.status.last_success);
    o["last_change"] = time_or_null(m.status.last_change);
    o["last_success_age_seconds"] =
        m.status.last_success ? json::value(seconds_between(*m.status.last_success, r.now))
                              : json::value(nullptr);
    o["last_error"] = m.status.last_error;
    o["status_error"] = m.status_error;
    o["blocked"] = m.blocked;
    o["route"] = m.route;
    o["syncs"] = json::object{{"ok", m.syncs_ok},
                              {"not_modified", m.syncs_not_modified},
                              {"failed", m.syncs_failed}};
    o["interval_seconds"] = std::chrono::duration_cast<std::chrono::seconds>(m.interval).count();
    o["freshness"] = to_json(m.freshness, r.now);
    o["rate"] = to_json(m.rate);
    sources.push_back(std::move(o));
  }
  root["mirrors"] = json::object{{"configured", r.mirrors_configured},
                                 {"rate", to_json(r.mirror_rate)},
                                 {"sources", std::move(sources)}};

  json::array running;
  for (const auto& t : r.transfers) {
    running.push_back(json::object{{"client", t.client},
                                   {"item", t.item},
                                   {"offset", t.offset},
                                   {"length", t.length},
                                   {"bytes_sent", t.bytes_sent},
                                   {"started", format_utc(t.started)},
                                   {"seconds", seconds_between(t.started, r.now)}});
  }
  root["transfers"] = json::object{{"running", r.stats.active_transfers},
                                   {"max", r.stats.max_peers},
                                   {"refused_busy", r.stats.refused_busy},
                                   {"list", std::move(running)}};

  json::array peers;
  for (const auto& p : r.top_peers) {
    peers.push_back(json::object{{"client", p.client}, {"bytes", p.bytes},
                                 {"transfers", p.transfers}});
  }
  root["top_peers"] = std::move(peers);

  json::array served;
  json::array upstream;
  for (const auto& point : r.traffic) {
    served.push_back(point.served);
    upstream.push_back(point.upstream);
  }
  root["traffic"] = json::object{
      {"bucket_seconds", std::chrono::duration_cast<std::chrono::seconds>(r.traffic_bucket).count()},
      {"start", r.traffic.empty() ? json::value(nullptr)
                                  : json::value(json::string(format_utc(r.traffic.front().start)))},
      {"served", std::move(served)},
      {"upstream", std::move(upstream)}};

  const auto served_total = r.stats.bytes_served;
  root["totals"] = json::object{
      {"bytes_served", served_total},
      {"bytes_fetched_upstream", r.bytes_fetched_upstream},
      {"bytes_spared", served_total > r.bytes_fetched_upstream
                           ? served_total - r.bytes_fetched_upstream
                           : 0},
      {"hash_mismatches", r.hash_mismatches}};
  root["counters"] = to_json_object(r.stats);
  if (r.https) {
    root["https"] = json::object{{"port", r.https->port},
                                 {"certificate_sha256", r.https->certificate_sha256}};
  } else {
    root["https"] = nullptr;
  }
  return json::serialize(root);
}

}  // namespace lanrelay::relay
