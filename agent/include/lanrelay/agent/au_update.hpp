#pragma once

// The agent's hourly ActiveUpdate (AU) update for one source: `lanrelay update`.
//
// Life of an update:
//  1. Read `server.ini` from the tree's URL: the relay's /activeupdate/<source>/ or the upstream
//     tree itself, parsed completely (activeupdate::parse) or not used at all.
//  2. Plan (plan_update, free of I/O): for each pattern, the Merge diff whose `from` equals the
//     local version and whose name shows it leads to the current version, else the full file
//     (activeupdate::index::choose_update); for each engine, the full file when the index's
//     dotted version is newer than the local one. Nothing for components already current.
//  3. Get each chosen file through agent::fetch: segment discovery under the item identity kind
//     `file`, name = activeupdate::segment_item_name(path), version = the listed size in decimal
//     bytes (as the relay offers mirrored files); offers are used only with a trusted digest
//     (the relay's catalog signed with a pinned site key), otherwise the file comes from the URL
//     (tree URL + path). Either way its size must equal the index's. Its .sig (beside every .zip) comes from the URL alone: the index lists no size
//     for it, so it has no segment identity.
//  4. Install: files land in <dir>/.lanrelay-staging/ first, are checked, then renamed to
//     <dir>/<AU path> (signature first, payload second); the record of local versions
//     (<dir>/lanrelay-versions.json) is replaced last, atomically. A killed update never records
//     a version whose files are missing; its leftovers in staging are removed by the next run.
//
// Applying a Merge diff to the installed pattern is the product's business (the format is the
// vendor's): the update delivers the diff beside the files and records the version it leads to.
// Files of older versions are left in place for the product to clean up.
//
// One update per directory at a time (flock on <dir>/.lanrelay-update.lock).
// Threading: a coroutine on the caller's executor; blocking file I/O on that thread.

#include "lanrelay/agent/fetch.hpp"
#include "lanrelay/base/error.hpp"
#include "lanrelay/content/activeupdate_index.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/url/url.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lanrelay::agent {

enum class au_component_kind { pattern, engine };

// A component is named "P.<id>" (pattern) or "E.<id>" (engine), as its key in server.ini.
std::string component_name(au_component_kind kind, std::string_view id);

// What the directory holds, per component name.
struct installed_component {
  std::string version;             // as listed in the index when it was installed
  std::vector<std::string> files;  // AU paths installed for it (payload and .sig)
};

struct local_versions {
  std::map<std::string, installed_component> components;
};

inline constexpr std::string_view versions_file_name = "lanrelay-versions.json";

// Reads <dir>/lanrelay-versions.json; empty when the file does not exist. A file that does not
// parse gives errc::corrupt_index (the message of the error names it).
result<local_versions> read_local_versions(const std::filesystem::path& dir);
// Replaces it atomically (temporary file, fsync, rename, fsync of the directory).
result<void> write_local_versions(const std::filesystem::path& dir, const local_versions& versions);

enum class au_action { current, diff, full };
std::string_view to_string(au_action action) noexcept;

struct planned_component {
  au_component_kind kind = au_component_kind::pattern;
  std::string name;                 // "P.<id>" or "E.<id>"
  std::optional<std::string> from;  // the local version; none when never installed
  std::string to;                   // the index's version
  au_action action = au_action::current;
  std::string path;                 // the file to get (empty when current)
  std::uint64_t size = 0;
};

struct update_plan {
  std::vector<planned_component> components;  // index order: patterns, then engines
  std::vector<std::string> unknown;           // requested components the index does not list
};

// `wanted`: component names ("P.48020000", "E.4") or bare ids, which select the patterns and
// engines with that id (compared case-insensitively, as the index does); empty selects every
// pattern and engine. A local version that does not parse counts as none (full file).
update_plan plan_update(const activeupdate::index& index, const local_versions& local,
                        const std::vector<std::string>& wanted);

struct au_update_options {
  // The tree's base URL ("…/activeupdate/<source>/"; a missing final '/' is added), or the URL
  // of its server.ini.
  boost::urls::url index_url;
  std::filesystem::path dir;
  std::vector<std::string> components;  // see plan_update
  // Discovery, trust (site_keys), state_dir, timeouts, attempt limits, TLS and progress for
  // every file; wanted, output, upstream and digest are set per file.
  fetch_options fetch;
  // The whole update: each file's fetch ends by then at the latest, and a component whose turn
  // comes later fails (the others keep what they installed); 0: never.
  std::chrono::milliseconds deadline{std::chrono::hours(4)};
};

struct component_outcome {
  planned_component plan;
  bool ok = true;
  std::string error;                           // why it failed, for an administrator
  fetch_source source = fetch_source::upstream;  // of the payload
  std::string responder;
  std::string fallback_reason;
  bool verified = false;  // the payload matched a digest from a signed catalog
  std::uint64_t bytes = 0;  // payload and .sig
};

struct au_update_outcome {
  std::string index_url;  // the server.ini actually read
  std::vector<component_outcome> components;
  bool ok() const noexcept;  // every component current or installed
};

// Errors (nothing installed, nothing recorded) when the directory cannot be used or locked,
// the index cannot be read or parsed, or a requested component is not in the index. A failed
// component does not stop the others; it is reported in its component_outcome.
boost::asio::awaitable<boost::system::result<au_update_outcome, fetch_failure>> update_activeupdate(
    const au_update_options& options);

}  // namespace lanrelay::agent
