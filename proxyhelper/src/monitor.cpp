#include "lanrelay/proxyhelper/monitor.hpp"

#include "lanrelay/base/text_format.hpp"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <atomic>

namespace lanrelay::proxyhelper {
namespace {

namespace json = boost::json;
using metrics::metric_type;
using metrics::sample;

std::function<std::vector<sample>()> read(const std::atomic<std::uint64_t>& value) {
  return [&value] {
    return std::vector<sample>{{{}, static_cast<double>(value.load(std::memory_order_relaxed))}};
  };
}

double seconds(std::chrono::milliseconds ms) { return static_cast<double>(ms.count()) / 1000.0; }

std::int64_t age_seconds(std::chrono::system_clock::time_point then,
                         std::chrono::system_clock::time_point now) {
  return std::chrono::duration_cast<std::chrono::seconds>(now - then).count();
}

std::string state_of(const proxy_health::status& s) {
  return !s.checked ? "not checked yet" : s.healthy ? "healthy" : "failing";
}

}  // namespace

void register_metrics(metrics::registry& r, const monitor_sources& sources) {
  const auto& c = sources.counters;
  const auto& health = sources.health;
  r.add_collector("lanrelay_proxy_queries_received_total",
                  "Proxy query datagrams received, valid or not.", metric_type::counter, {}, [&c] {
                    constexpr auto relaxed = std::memory_order_relaxed;
                    const auto total = c.queries.load(relaxed) + c.dropped_on_receipt();
                    return std::vector<sample>{{{}, static_cast<double>(total)}};
                  });
  r.add_collector("lanrelay_proxy_queries_answered_total",
                  "Queries answered with a signed list of proxies.", metric_type::counter, {},
                  read(c.answers_sent));
  r.add_collector("lanrelay_proxy_queries_dropped_total", "Queries not answered, by reason.",
                  metric_type::counter, {"reason"}, [&c] {
                    const auto v = [](const std::atomic<std::uint64_t>& a) {
                      return static_cast<double>(a.load(std::memory_order_relaxed));
                    };
                    auto samples = drop_samples(c);
                    samples.push_back({{"no_healthy_proxy"}, v(c.no_healthy_proxy)});
                    samples.push_back({{"reply_too_large"}, v(c.reply_too_large)});
                    samples.push_back({{"send_error"}, v(c.send_errors)});
                    return samples;
                  });
  r.add_collector("lanrelay_proxy_pac_served_total", "/proxy.pac and /wpad.dat answers.",
                  metric_type::counter, {}, read(c.pac_served));
  r.add_collector("lanrelay_proxy_http_requests_total", "HTTP request heads handled.",
                  metric_type::counter, {}, read(c.http_requests));
  r.add_collector("lanrelay_proxy_http_connections_refused_total",
                  "TCP connections closed at once over http.max_connections.",
                  metric_type::counter, {}, read(c.connections_refused));

  // Per proxy, from proxy_health at scrape time.
  const auto per_proxy = [&health](auto value) {
    return [&health, value] {
      std::vector<sample> out;
      const auto now = std::chrono::system_clock::now();
      for (const auto& s : health.snapshot()) {
        if (const auto v = value(s, now)) {
          out.push_back({{s.spec.url}, *v});
        }
      }
      return out;
    };
  };
  using status = proxy_health::status;
  using time_point = std::chrono::system_clock::time_point;
  r.add_collector("lanrelay_proxy_healthy",
                  "1 when the proxy passed its latest health check (it is advertised), else 0.",
                  metric_type::gauge, {"proxy"},
                  per_proxy([](const status& s, time_point) -> std::optional<double> {
                    return s.healthy ? 1.0 : 0.0;
                  }));
  r.add_collector("lanrelay_proxy_check_duration_seconds",
                  "How long the latest health check of the proxy took.", metric_type::gauge,
                  {"proxy"}, per_proxy([](const status& s, time_point) -> std::optional<double> {
                    return s.checked ? std::optional(seconds(s.last_elapsed)) : std::nullopt;
                  }));
  r.add_collector("lanrelay_proxy_last_healthy_age_seconds",
                  "Seconds since the proxy last passed a health check (absent: never).",
                  metric_type::gauge, {"proxy"},
                  per_proxy([](const status& s, time_point now) -> std::optional<double> {
                    if (!s.last_healthy) {
                      return std::nullopt;
                    }
                    return static_cast<double>(age_seconds(*s.last_healthy, now));
                  }));
  r.add_collector("lanrelay_proxy_health_checks_total", "Health checks of each proxy, by result.",
                  metric_type::counter, {"proxy", "result"}, [&health] {
                    std::vector<sample> out;
                    for (const auto& s : health.snapshot()) {
                      out.push_back({{s.spec.url, "passed"}, static_cast<double>(s.checks_passed)});
                      out.push_back({{s.spec.url, "failed"}, static_cast<double>(s.checks_failed)});
                    }
                    return out;
                  });
  const double started =
      std::chrono::duration<double>(sources.started.time_since_epoch()).count();
  r.add_collector("lanrelay_proxy_start_time_seconds",
                  "When this proxyhelperd started, in Unix time.", metric_type::gauge, {},
                  [started] { return std::vector<sample>{{{}, started}}; });
}

std::string status_json(const monitor_sources& m, std::chrono::system_clock::time_point now) {
  const auto& c = m.counters;
  json::object root;
  root["now"] = format_utc(now);
  root["started"] = format_utc(m.started);
  root["uptime_seconds"] = age_seconds(m.started, now);
  root["public_key"] = m.public_key;
  if (m.tls) {
    root["https"] = json::object{{"port", m.https_port},
                                 {"certificate_sha256", fingerprint_text(m.tls->current()->fingerprint)}};
  } else {
    root["https"] = nullptr;
  }
  json::object counters{{"queries", c.queries.load()},
                        {"answers_sent", c.answers_sent.load()},
                        {"no_healthy_proxy", c.no_healthy_proxy.load()},
                        {"reply_too_large", c.reply_too_large.load()},
                        {"send_errors", c.send_errors.load()},
                        {"pac_served", c.pac_served.load()},
                        {"http_requests", c.http_requests.load()}};
  add_to_json(counters, c);
  root["counters"] = std::move(counters);
  json::array proxies;
  for (const auto& s : m.health.snapshot()) {
    json::array history;
    for (const auto& h : s.history) {
      history.push_back(json::object{{"at", format_utc(h.at)},
                                     {"healthy", h.healthy},
                                     {"result", h.result},
                                     {"elapsed_ms", h.elapsed.count()}});
    }
    json::object p{{"url", s.spec.url},
                   {"priority", s.spec.priority},
                   {"needs_credentials", s.spec.needs_credentials},
                   {"auth", s.spec.auth},
                   {"state", state_of(s)},
                   {"healthy", s.healthy},
                   {"last_result", s.last_result},
                   {"last_elapsed_ms", s.last_elapsed.count()},
                   {"checks_passed", s.checks_passed},
                   {"checks_failed", s.checks_failed},
                   {"history", std::move(history)}};
    p["last_healthy"] = s.last_healthy ? json::value(format_utc(*s.last_healthy)) : nullptr;
    proxies.push_back(std::move(p));
  }
  root["proxies"] = std::move(proxies);
  json::array queries;
  for (const auto& q : m.queries.recent()) {
    json::array advertised;
    for (const auto& p : q.proxies) {
      advertised.push_back(json::string(p));
    }
    queries.push_back(json::object{{"at", format_utc(q.at)},
                                   {"client", q.client},
                                   {"outcome", q.outcome},
                                   {"proxies", std::move(advertised)}});
  }
  root["recent_queries"] = std::move(queries);
  return json::serialize(root);
}

std::string status_page(const monitor_sources& m, std::chrono::system_clock::time_point now) {
  const auto& c = m.counters;
  const auto snapshot = m.health.snapshot();
  std::size_t healthy = 0;
  for (const auto& s : snapshot) {
    healthy += s.healthy ? 1 : 0;
  }
  std::string out;
  out.reserve(32 * 1024);
  out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<meta http-equiv=\"refresh\" content=\"30\">\n"
         "<title>proxyhelperd status</title>\n<style>";
  out += status_page_style;
  out += "</style></head><body>\n<h1>proxyhelperd</h1>\n";
  out += "<p class=\"meta\">up " +
         html_escape(human_duration(std::chrono::duration_cast<std::chrono::seconds>(now - m.started))) +
         " &middot; " + html_escape(format_utc(now)) +
         " &middot; <a href=\"/-/status\">JSON</a> &middot; <a href=\"/-/metrics\">metrics</a>"
         " &middot; <a href=\"/proxy.pac\">PAC</a></p>\n";
  out += "<p class=\"meta\">public key (pin it on the agents): <code>" + html_escape(m.public_key) +
         "</code></p>\n";
  const auto card = [&out](std::string_view label, const std::string& value) {
    out += "<div class=\"card\"><div class=\"label\">" + html_escape(label) +
           "</div><div class=\"value\">" + html_escape(value) + "</div></div>\n";
  };
  out += "<div class=\"cards\">\n";
  card("proxies healthy", fmt::format("{} of {}", healthy, snapshot.size()));
  card("queries answered", fmt::format("{} of {}", c.answers_sent.load(), c.queries.load()));
  card("unanswered: no healthy proxy", std::to_string(c.no_healthy_proxy.load()));
  card("PAC served", std::to_string(c.pac_served.load()));
  out += "</div>\n";

  out += "<h2>Proxies</h2>\n<table><tr><th>proxy</th><th>priority</th><th>state</th>"
         "<th>last check</th><th>last healthy</th><th>passed / failed</th><th>history (oldest "
         "first)</th></tr>\n";
  for (const auto& s : snapshot) {
    std::string history;
    for (const auto& h : s.history) {
      history += fmt::format("<span class=\"swatch {}\" title=\"{} {}\"></span>",
                             h.healthy ? "ok" : "failed", html_escape(format_utc(h.at)),
                             html_escape(h.result));
    }
    out += fmt::format(
        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{} ({} ms)</td><td>{}</td>"
        "<td>{} / {}</td><td>{}</td></tr>\n",
        html_escape(s.spec.url), s.spec.priority, html_escape(state_of(s)),
        html_escape(s.last_result), s.last_elapsed.count(),
        s.last_healthy ? html_escape(format_utc(*s.last_healthy)) : "never", s.checks_passed,
        s.checks_failed, history);
  }
  out += "</table>\n";

  out += "<h2>Recent queries</h2>\n";
  const auto queries = m.queries.recent();
  if (queries.empty()) {
    out += "<p>No query from this segment yet.</p>\n";
  } else {
    out += "<table><tr><th>time</th><th>agent</th><th>outcome</th><th>proxies advertised</th>"
           "</tr>\n";
    for (const auto& q : queries) {
      std::string advertised;
      for (const auto& p : q.proxies) {
        advertised += (advertised.empty() ? "" : ", ") + html_escape(p);
      }
      out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                         html_escape(format_utc(q.at)), html_escape(q.client),
                         html_escape(q.outcome), advertised);
    }
    out += "</table>\n";
  }
  out += "</body></html>\n";
  return out;
}

}  // namespace lanrelay::proxyhelper
