#pragma once

// How current a mirror source is, per component (issue 15): the version the relay serves, the
// newest version the upstream lists, and since when each has been so. The mirror service keeps
// one list per source, advances it after every sync attempt (advance_freshness) and remembers it
// in <state>/mirror/<name>/freshness.json, so ages survive a restart. Nothing here does I/O but
// load_freshness and save_freshness.
//
// Components are named as in mirror_source_view::versions: "PATTERN:<id>" (versions compared as
// pattern versions, 16.679.00) and "ENGINE:<id>" (dotted versions, 12.500.1004).
//
// Thread safety: plain values and pure functions; the service guards its lists with the source's
// mutex.

#include "lanrelay/base/error.hpp"
#include "lanrelay/content/activeupdate_index.hpp"

#include <boost/json/array.hpp>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lanrelay::relay {

// (component, version) in index order.
using component_versions = std::vector<std::pair<std::string, std::string>>;

// The patterns and engines `doc` lists.
component_versions versions_of(const activeupdate::index& doc);

// Is `a` a newer version than `b` of `component`? False when either does not parse.
bool newer_version(std::string_view component, std::string_view a, std::string_view b);

struct component_freshness {
  std::string component;
  std::string served;    // the version the relay serves; empty: the served index lacks it
  std::string upstream;  // the newest the upstream listed when last read; empty: not known
  // When this relay began serving `served`, and first saw the upstream list `upstream`.
  std::optional<std::chrono::system_clock::time_point> served_since;
  std::optional<std::chrono::system_clock::time_point> upstream_since;

  // The upstream lists a newer version than the one served (or one the relay does not serve).
  bool behind() const;
  // How long the relay has been behind at `now`: since the upstream listed the newer version;
  // zero when it is not behind.
  std::chrono::seconds behind_for(std::chrono::system_clock::time_point now) const;

  bool operator==(const component_freshness&) const = default;
};

// The list after a sync attempt. `served`: the served index's components now. `upstream`: what
// the upstream's index listed this time (after a 304: the served versions); nothing when the
// index was not read (the attempt failed before it), which keeps what was known. A version that
// changed gets `now` as its since; one unchanged keeps its time.
std::vector<component_freshness> advance_freshness(const std::vector<component_freshness>& before,
                                                   const component_versions& served,
                                                   const std::optional<component_versions>& upstream,
                                                   std::chrono::system_clock::time_point now);

// For /-/mirror and /-/status: per component "component", "served", "upstream",
// "served_since", "upstream_since" (Unix seconds or null), "served_age_seconds",
// "upstream_age_seconds" (null when unknown), "behind" and "behind_seconds".
boost::json::array to_json(const std::vector<component_freshness>& list,
                           std::chrono::system_clock::time_point now);

// <dir>/freshness.json; empty when missing or unreadable (ages then start anew).
std::vector<component_freshness> load_freshness(const std::filesystem::path& dir);
// Written atomically through <dir>/staging/.freshness.json.tmp.
result<void> save_freshness(const std::filesystem::path& dir,
                            const std::vector<component_freshness>& list);

}  // namespace lanrelay::relay
