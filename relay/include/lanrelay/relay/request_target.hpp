#pragma once

// The relay's URL scheme and the pure parser that maps a request-target onto it.
//
// URL scheme (origin-form targets only):
//
//   GET|HEAD /cache/<kind>/<name>/<version>   a cached item. <kind> is installer, pattern or file;
//                                             <version> may be any spelling canonical_version()
//                                             accepts (a pattern as 1667900 or 16.679.00). The
//                                             body is the item's bytes; ETag is "<sha256 hex>".
//                                             Range (one byte range), If-Range, If-None-Match
//                                             and If-Match are honoured.
//   GET|HEAD /activeupdate/<source>/<path>    a file of the mirrored ActiveUpdate tree <source>
//                                             (server.ini included) at its upstream path. <path>
//                                             must pass activeupdate::is_safe_relative_path after
//                                             percent-decoding (escapes of '.', '/', '\' and NUL
//                                             are refused as everywhere). ETag, Range and the
//                                             conditional headers as for /cache.
//   GET|HEAD /-/mirror                        JSON: every mirror source with its last sync.
//   POST /-/mirror/sync[/<source>]            an admin request: syncs the source (every source
//                                             without one) now and answers with the results.
//   GET|HEAD /-/healthz                       200 "ok" while the server accepts requests.
//   GET|HEAD /-/catalog                       JSON: {"items":[{"kind","name","version","size",
//                                             "sha256","url"}...]}, url being the /cache path.
//   GET|HEAD /-/catalog.signed                the catalog signed with the site key (catalog_signer);
//                                             404 when the relay has no key.
//   GET|HEAD /-/pieces/<sha256>               the piece list (content/piece_list.hpp) of the stored
//                                             item whose content has this SHA-256 (64 hex
//                                             digits, either case; anything else is 400), or of
//                                             the partial item a peer is still downloading.
//   GET|HEAD /-/have/<sha256>                 which pieces of that content this server holds: a
//                                             bitfield (content/partial_items.hpp), all ones for
//                                             a stored item; 404 when it holds none.
//   GET|HEAD /-/stats                         JSON counters (active and peak transfers, refusals,
//                                             bytes served, requests, connections).
//
// Monitoring and admin (relay/admin_access.hpp decides who may use them):
//   GET|HEAD /                                the status page (HTML, no script).
//   GET|HEAD /-/status                        the same status as JSON.
//   GET|HEAD /-/metrics                       Prometheus text exposition format 0.0.4.
//   GET|HEAD /-/log-level                     the current log level; PUT with a level as the body
//                                             (admin token) changes it.
//
// Anything else is 404; a known path with a method other than GET or HEAD (POST for
// /-/mirror/sync, PUT for /-/log-level) is 405 with the Allow header. A query component ("?...")
// is ignored.
//
// 400 versus 404, consistently: a target that is malformed or unsafe gets 400 — not origin-form
// (absolute-form, authority-form, "*"), a fragment, raw control characters, spaces, backslashes,
// bytes >= 0x80, NUL, a malformed percent escape, an escape of '.', '/', '\' or NUL (%2e %2f %5c
// %00 in any case), an escape of anything outside the name alphabet, an empty segment ("//" or a
// trailing '/'), a segment that is "." or contains "..", or an item name or version that fails
// is_valid_name / canonical_version. A well-formed target that names nothing gets 404 — an unknown
// path, an unknown kind, the wrong number of segments under /cache, an item the store lacks.
//
// A /cache target only ever becomes an item_key for a store lookup. A /activeupdate target becomes
// a relative path only after the checks above; the mirror opens it below its tree with
// O_NOFOLLOW on every component and serves only paths the served index names.

#include "lanrelay/content/store.hpp"

#include <string_view>

namespace lanrelay::relay {

enum class resource_kind {
  cache_item,
  mirror_file,
  mirror_status,  // GET /-/mirror
  mirror_sync,    // POST /-/mirror/sync[/<source>]
  healthz,
  catalog,
  signed_catalog,
  piece_list,     // GET /-/pieces/<sha256>
  piece_have,     // GET /-/have/<sha256>
  stats,
  // Monitoring and admin endpoints.
  status_page,
  status,
  metrics,
  log_level,
};

enum class target_verdict {
  ok,           // `resource` names what was asked for
  bad_request,  // malformed or unsafe: answer 400
  not_found,    // well-formed but names nothing: answer 404
};

struct parsed_target {
  target_verdict verdict = target_verdict::bad_request;
  resource_kind resource = resource_kind::healthz;
  item_key key;              // only for resource_kind::cache_item; version canonicalised
  std::string mirror_source;  // mirror_file, mirror_sync: a valid source name (sync: may be empty)
  std::string mirror_path;    // only for resource_kind::mirror_file: a safe relative path
  sha256_digest sha256{};     // only for resource_kind::piece_list
  std::string_view reason;   // why it was rejected, for the log (static text)
};

// Pure and thread safe; never touches the filesystem.
parsed_target parse_request_target(std::string_view target);

// "/activeupdate/<source>/<relative>".
std::string mirror_path(std::string_view source, std::string_view relative);

// The path under which the catalog lists `key`: /cache/<kind>/<name>/<version>.
std::string cache_path(const item_key& key);

}  // namespace lanrelay::relay
