// The status page at /: one self-contained HTML document (inline CSS and SVG, no script, nothing
// fetched from elsewhere), so it works from a text browser and behind any firewall. Everything
// that came from outside the code (item names, client addresses, URLs, error texts) goes through
// html_escape.

#include "lanrelay/relay/status.hpp"

#include "lanrelay/base/text_format.hpp"
#include "lanrelay/relay/request_target.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace lanrelay::relay {
namespace {

// Chart geometry, in SVG user units (the SVG scales to the page width).
constexpr int chart_bar = 2;                       // each series' bar width per bucket
constexpr int chart_step = 2 * chart_bar;          // width of one bucket
constexpr int chart_left = 70;                     // room for the y-axis labels
constexpr int chart_top = 10;
constexpr int chart_height = 180;
constexpr int chart_bottom = 24;                   // room for the x-axis labels
constexpr std::size_t label_every = 36;            // buckets between x-axis labels (3 h)



std::string age(std::optional<std::chrono::system_clock::time_point> t,
                std::chrono::system_clock::time_point now) {
  if (!t) {
    return "never";
  }
  return format_utc(*t) + " (" +
         human_duration(std::chrono::duration_cast<std::chrono::seconds>(now - *t)) + " ago)";
}

std::string hh_mm(std::chrono::system_clock::time_point t) {
  return fmt::format("{:%H:%M}", std::chrono::time_point_cast<std::chrono::seconds>(t));
}

void card(std::string& out, std::string_view label, const std::string& value) {
  out += "<div class=\"card\"><div class=\"label\">" + html_escape(label) +
         "</div><div class=\"value\">" + html_escape(value) + "</div></div>\n";
}

void chart(std::string& out, const status_report& r) {
  const auto& points = r.traffic;
  std::uint64_t peak = 1;
  std::uint64_t served_sum = 0;
  std::uint64_t upstream_sum = 0;
  for (const auto& p : points) {
    peak = std::max({peak, p.served, p.upstream});
    served_sum += p.served;
    upstream_sum += p.upstream;
  }
  const int width = chart_left + static_cast<int>(points.size()) * chart_step + 10;
  const int height = chart_top + chart_height + chart_bottom;
  const auto y_of = [&](std::uint64_t v) {
    return static_cast<double>(chart_height) * static_cast<double>(v) / static_cast<double>(peak);
  };

  out += fmt::format(
      "<svg id=\"traffic-chart\" role=\"img\" viewBox=\"0 0 {} {}\" "
      "preserveAspectRatio=\"none\" xmlns=\"http://www.w3.org/2000/svg\" "
      "aria-label=\"Bytes served locally versus fetched upstream, last 24 hours\">\n"
      "<title>Bytes served locally ({}) versus fetched upstream ({}) over the last 24 hours, "
      "per {} minutes</title>\n",
      width, height, html_escape(human_bytes(served_sum)), html_escape(human_bytes(upstream_sum)),
      r.traffic_bucket.count());
  // Axes and grid: four horizontal lines with their values.
  for (int i = 0; i <= 4; ++i) {
    const double y = chart_top + chart_height - chart_height * i / 4.0;
    out += fmt::format("<line class=\"grid\" x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\"/>",
                       chart_left, y, width - 10, y);
    out += fmt::format("<text class=\"axis\" x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
                       chart_left - 6, y + 4, html_escape(human_bytes(peak * i / 4)));
  }
  for (std::size_t i = 0; i < points.size(); ++i) {
    const int x = chart_left + static_cast<int>(i) * chart_step;
    const auto& p = points[i];
    if (p.served > 0) {
      const double h = std::max(1.0, y_of(p.served));
      out += fmt::format("<rect class=\"served\" x=\"{}\" y=\"{:.1f}\" width=\"{}\" "
                         "height=\"{:.1f}\"><title>{} served locally, from {} UTC</title></rect>",
                         x, chart_top + chart_height - h, chart_bar, h,
                         html_escape(human_bytes(p.served)), hh_mm(p.start));
    }
    if (p.upstream > 0) {
      const double h = std::max(1.0, y_of(p.upstream));
      out += fmt::format("<rect class=\"upstream\" x=\"{}\" y=\"{:.1f}\" width=\"{}\" "
                         "height=\"{:.1f}\"><title>{} fetched upstream, from {} UTC</title></rect>",
                         x + chart_bar, chart_top + chart_height - h, chart_bar, h,
                         html_escape(human_bytes(p.upstream)), hh_mm(p.start));
    }
    if (i % label_every == 0) {
      out += fmt::format("<text class=\"axis\" x=\"{}\" y=\"{}\">{}</text>\n", x,
                         chart_top + chart_height + 16, hh_mm(p.start));
    }
  }
  out += fmt::format("<line class=\"base\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\n",
                     chart_left, chart_top + chart_height, width - 10, chart_top + chart_height);
  out += "</svg>\n";
  out += "<p class=\"legend\"><span class=\"swatch served\"></span> served locally: " +
         html_escape(human_bytes(served_sum)) +
         " &nbsp; <span class=\"swatch upstream\"></span> fetched upstream: " +
         html_escape(human_bytes(upstream_sum)) + " &nbsp; (last 24 h, UTC, " +
         std::to_string(r.traffic_bucket.count()) + "-minute bars)</p>\n";
}


}  // namespace


std::string render_status_page(const status_report& r) {
  std::string out;
  out.reserve(64 * 1024);
  out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<meta http-equiv=\"refresh\" content=\"30\">\n"
         "<title>lanrelay " + html_escape(r.role) + " status</title>\n<style>";
  out += status_page_style;
  out += "</style></head><body>\n";
  out += "<h1>lanrelay " + html_escape(r.role) + "</h1>\n";
  out += "<p class=\"meta\">version " + html_escape(r.version) + " &middot; up " +
         html_escape(human_duration(
             std::chrono::duration_cast<std::chrono::seconds>(r.now - r.started))) +
         " &middot; log level " + html_escape(r.log_level) + " &middot; " +
         html_escape(format_utc(r.now)) +
         " &middot; <a href=\"/-/status\">JSON</a> &middot; <a href=\"/-/metrics\">metrics</a></p>\n";

  const auto served = r.stats.bytes_served;
  out += "<div class=\"cards\">\n";
  card(out, "served locally", human_bytes(served));
  card(out, "fetched upstream", human_bytes(r.bytes_fetched_upstream));
  card(out, "WAN spared",
       human_bytes(served > r.bytes_fetched_upstream ? served - r.bytes_fetched_upstream : 0));
  card(out, "transfers now",
       fmt::format("{} / {}", r.stats.active_transfers, r.stats.max_peers));
  card(out, "refused as busy", std::to_string(r.stats.refused_busy));
  card(out, "cache",
       fmt::format("{} {}, {}", r.items.size(), r.items.size() == 1 ? "item" : "items", human_bytes(r.cache_bytes)) +
           (r.cache_max_bytes != 0 ? " of " + human_bytes(r.cache_max_bytes) : ""));
  card(out, "queries answered",
       fmt::format("{} of {}", r.stats.discovery.offers_sent, r.stats.discovery.queries));
  card(out, "hash mismatches", std::to_string(r.hash_mismatches));
  std::uint64_t fallbacks = 0;
  for (const auto n : r.stats.agent_fallbacks) {
    fallbacks += n;
  }
  card(out, "agent fallbacks reported", std::to_string(fallbacks));
  out += "</div>\n";

  out += "<h2>Traffic, last 24 hours</h2>\n";
  chart(out, r);

  out += "<h2>Transfers running now</h2>\n";
  if (r.transfers.empty()) {
    out += "<p class=\"empty\">No transfer is running.</p>\n";
  } else {
    out += "<table id=\"transfers\"><tr><th>client</th><th>item</th><th>sent</th><th>of</th>"
           "<th>running for</th></tr>\n";
    for (const auto& t : r.transfers) {
      out += "<tr><td>" + html_escape(t.client) + "</td><td>" + html_escape(t.item) +
             "</td><td class=\"num\">" + html_escape(human_bytes(t.bytes_sent)) +
             "</td><td class=\"num\">" + html_escape(human_bytes(t.length)) +
             "</td><td class=\"num\">" +
             html_escape(human_duration(
                 std::chrono::duration_cast<std::chrono::seconds>(r.now - t.started))) +
             "</td></tr>\n";
    }
    out += "</table>\n";
  }

  out += "<h2>Top peers served</h2>\n";
  if (r.top_peers.empty()) {
    out += "<p class=\"empty\">No client has been served yet.</p>\n";
  } else {
    out += "<table id=\"peers\"><tr><th>client</th><th>bytes</th><th>transfers</th></tr>\n";
    for (const auto& p : r.top_peers) {
      out += "<tr><td>" + html_escape(p.client) + "</td><td class=\"num\">" +
             html_escape(human_bytes(p.bytes)) + "</td><td class=\"num\">" +
             std::to_string(p.transfers) + "</td></tr>\n";
    }
    out += "</table>\n";
  }

  out += "<h2>Cache</h2>\n";
  if (r.items.empty()) {
    out += "<p class=\"empty\">The cache is empty.</p>\n";
  } else {
    out += "<table id=\"cache\"><tr><th>kind</th><th>name</th><th>version</th><th>size</th>"
           "<th>SHA-256</th><th>pinned</th><th>last used</th></tr>\n";
    for (const auto& it : r.items) {
      const auto hex = to_hex(it.sha256);
      out += "<tr><td>" + html_escape(to_string(it.key.kind)) + "</td><td>" +
             html_escape(it.key.name) + "</td><td><a href=\"" + html_escape(cache_path(it.key)) +
             "\">" + html_escape(it.key.version) + "</a></td><td class=\"num\">" +
             html_escape(human_bytes(it.size)) + "</td><td><code title=\"" + hex + "\">" +
             hex.substr(0, 16) + "&hellip;</code></td><td>" + (it.pinned ? "yes" : "") +
             "</td><td>" + html_escape(format_utc(it.last_used)) + "</td></tr>\n";
    }
    out += "</table>\n";
  }

  out += "<h2>Mirror sources</h2>\n";
  if (!r.mirrors_configured || r.mirrors.empty()) {
    out += "<p class=\"empty\">No mirror source is configured.</p>\n";
  } else {
    out += "<table id=\"mirrors\"><tr><th>source</th><th>upstream</th><th>snapshot</th>"
           "<th>last success</th><th>last attempt</th><th>syncs ok / 304 / failed</th>"
           "<th>download limit</th><th>last error</th></tr>\n";
    for (const auto& m : r.mirrors) {
      std::string error = m.status_error.empty() ? m.status.last_error : m.status_error;
      if (!m.blocked.empty()) {
        error += (error.empty() ? "" : "; ") + std::string("nothing new is fetched: ") + m.blocked;
      }
      const std::string via = m.route.empty() ? "" : "<br>via " + html_escape(m.route);
      out += "<tr><td>" + html_escape(m.name) + "</td><td>" + html_escape(m.upstream) + via +
             "</td><td>" +
             (m.status.has_snapshot ? "generation " + std::to_string(m.status.generation)
                                    : std::string("none yet")) +
             "</td><td>" + html_escape(age(m.status.last_success, r.now)) + "</td><td>" +
             html_escape(age(m.status.last_attempt, r.now)) + "</td><td class=\"num\">" +
             fmt::format("{} / {} / {}", m.syncs_ok, m.syncs_not_modified, m.syncs_failed) +
             "</td><td>" + html_escape(rate_text(m.rate)) + "</td><td class=\"error\">" +
             html_escape(error) + "</td></tr>\n";
    }
    out += "</table>\n<p id=\"mirror-rate\">All sources together: " +
           html_escape(rate_text(r.mirror_rate)) + "</p>\n";

    out += "<h2>Freshness</h2>\n<table id=\"freshness\"><tr><th>source</th><th>component</th>"
           "<th>served</th><th>served for</th><th>upstream lists</th><th>listed for</th>"
           "<th>behind</th></tr>\n";
    const auto since = [&](const std::optional<std::chrono::system_clock::time_point>& t) {
      return t ? human_duration(std::chrono::duration_cast<std::chrono::seconds>(r.now - *t))
               : std::string("unknown");
    };
    for (const auto& m : r.mirrors) {
      for (const auto& c : m.freshness) {
        const bool behind = c.behind();
        out += "<tr><td>" + html_escape(m.name) + "</td><td>" + html_escape(c.component) +
               "</td><td>" + html_escape(c.served.empty() ? "none" : c.served) + "</td><td>" +
               html_escape(c.served.empty() ? "" : since(c.served_since)) + "</td><td>" +
               html_escape(c.upstream.empty() ? "not known yet" : c.upstream) + "</td><td>" +
               html_escape(c.upstream.empty() ? "" : since(c.upstream_since)) + "</td><td" +
               (behind ? " class=\"error\">behind for " + html_escape(human_duration(c.behind_for(r.now)))
                       : std::string(">current")) +
               "</td></tr>\n";
      }
    }
    out += "</table>\n";
  }
  out += "</body></html>\n";
  return out;
}

}  // namespace lanrelay::relay
