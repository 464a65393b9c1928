#pragma once

// The ActiveUpdate (AU) index, `server.ini`: a lossless model and the files it names.
//
// The document is kept as an ordered list of lines, each with its exact text and line ending, so
// that serialize(parse(x)) == x for every x that parses. Only the [Server] section is ever
// rewritten (rewrite_server_section); a mirror changes nothing else.
//
// Interpreted sections (names compared case-insensitively, kept as written):
// - [PATTERN]  P.<id>=<path>,<version>,<size>
//              P.<id>.Merge.<k>=<path>,<from version>,<size>   (file name `…<from>.<to>`)
//              Path_<NAME>=<path>,<size>
//              MergeCount=, P.<id>.MergeCount=                  (kept, not interpreted)
// - [ENGINE]   E.<id>=<name>,<path>,<version>,<size>,<minimum version>
// - [Info_…]   Version=<dotted>, Build=<dotted>, Path=<path>,<size>
// - [Server]   Server.<n>=<url>, Https=<url>
// Fields are separated by ',' and trimmed of spaces and tabs; trailing fields beyond the ones
// listed are kept and ignored (vendors add fields). Other keys in these sections and every other
// section are kept untouched. A line of an interpreted section that is neither blank, a comment
// (';' or '#'), a section header nor key=value is a syntax error: a mangled line there may hide a
// file. Before the first section and in unknown sections such lines are kept verbatim.
//
// Paths are untrusted and become both file names under the mirror's tree and URL paths, so they
// must pass is_safe_relative_path; one that fails rejects the whole index.
//
// An index is immutable after parsing and safe to share between threads for reading.

#include "lanrelay/base/error.hpp"
#include "lanrelay/base/version.hpp"

#include <boost/assert/source_location.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace lanrelay::activeupdate {

enum class errc {
  syntax = 1,         // malformed section header or line, or a key without the expected fields
  bad_path,           // a path is not a safe relative path
  bad_size,           // a size is not an unsigned decimal number
  bad_version,        // a version does not parse (patterns: 1667900 or 16.679.00; else dotted)
  duplicate_key,      // an interpreted key appears twice in the same section
  conflicting_entry,  // the same path is listed twice with different sizes
  too_large,          // the document exceeds max_document_bytes or max_document_lines
  bad_url,            // a mirror URL for the [Server] section contains control characters
};

const boost::system::error_category& activeupdate_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), activeupdate_category()};
}

inline constexpr std::size_t max_document_bytes = 4U << 20;
inline constexpr std::size_t max_document_lines = 100'000;
inline constexpr std::size_t max_path_length = 1024;
inline constexpr std::size_t max_path_segment_length = 255;

// Where and why a document was rejected. Only the first problem is reported: an index with any
// error is not used at all.
struct parse_error {
  errc code = errc::syntax;
  std::uint32_t line = 0;  // 1-based; 0 when the problem is the document as a whole
  std::string message;     // for an administrator: what is wrong and with which key or value

  boost::system::error_code error_code() const noexcept { return make_error_code(code); }
  std::string to_string(std::string_view file = "server.ini") const;  // "file:line: message"
};

// Lets parse_result<T>::value() throw a boost::system::system_error carrying the message.
[[noreturn]] void throw_exception_from_error(const parse_error& e, const boost::source_location& loc);

template <typename T>
using parse_result = boost::system::result<T, parse_error>;

// A path from the index is accepted only when it is relative, '/'-separated, at most
// max_path_length bytes, and every segment is 1..max_path_segment_length bytes of printable ASCII
// (0x21-0x7E) other than  \ % ? # : * " < > |  and is not "." or "..".
// '%' is refused, so "%2e%2e" is not a name: the path is used as a file name and as a URL path,
// and a percent escape would mean a different thing in each. ':' is refused for drive letters and
// URL schemes; non-ASCII and spaces for the same reason as '%' (real AU paths have none).
bool is_safe_relative_path(std::string_view path) noexcept;

// A mirror source's name, which becomes a URL segment (/activeupdate/<name>/) and a directory
// name: 1 to 64 of [A-Za-z0-9._-], not "." or "..".
bool is_valid_source_name(std::string_view name) noexcept;

// Every `.zip` (any case) has a signature beside it; products reject an update without it.
bool needs_signature(std::string_view path) noexcept;
// "a/b.zip" -> "a/b.sig" ("A.ZIP" -> "A.SIG"). Precondition: needs_signature(path).
std::string signature_path(std::string_view path);

// How a mirrored AU file is named on the segment (discovery queries, offers, catalogs): kind
// `file`, version = its listed size in decimal, and name = segment_item_name(path): the path with
// every byte outside [A-Za-z0-9._-] written as '+' and two lowercase hex digits ("pattern/lpt$vpn.679"
// -> "pattern+2flpt+24vpn.679"), so that it passes is_valid_name. Nothing when the result would
// be longer than 128 bytes or start with '.' or '-': such a file is served by the relay only.
std::optional<std::string> segment_item_name(std::string_view path);
// The inverse; nothing for a name segment_item_name cannot produce.
std::optional<std::string> path_from_segment_item_name(std::string_view name);

namespace detail {
class index_parser;
}  // namespace detail

enum class line_kind { blank, comment, section, entry, other };

struct line {
  line_kind kind = line_kind::other;
  std::string text;    // exactly as written, without the line ending (a UTF-8 BOM stays here)
  std::string ending;  // "\r\n", "\n", or "" for a last line without one
  std::string name;    // section: the name inside the brackets; entry: the key; both trimmed
  std::string value;   // entry: the value, trimmed
  std::size_t value_begin = 0;  // entry: where `value` starts in `text`
  std::size_t section = 0;      // index of the line's section header + 1; 0: before any section
};

enum class file_kind { pattern_full, pattern_merge, engine, program, path_entry };

std::string_view to_string(file_kind kind) noexcept;

struct listed_file {
  std::string path;  // relative, passes is_safe_relative_path
  std::uint64_t size = 0;
  file_kind kind = file_kind::pattern_full;
  // pattern_*: <id> of P.<id>; engine: <id> of E.<id>; program: the section name after "Info_";
  // path_entry: <NAME> of Path_<NAME>.
  std::string component;
  std::string version;       // as written; empty for path entries and programs without Version=
  std::string from_version;  // pattern_merge only, as written
  std::uint32_t line = 0;    // 1-based line that names the file
};

struct merge_diff {
  std::string path;
  pattern_version from;
  // From the file name `…<from>.<to>`; empty when the name does not have that shape.
  std::optional<pattern_version> to;
  std::uint64_t size = 0;
  std::string number;  // <k> of P.<id>.Merge.<k>
  std::uint32_t line = 0;
};

struct pattern_component {
  std::string id;
  std::string path;  // the full file
  pattern_version version;
  std::uint64_t size = 0;
  std::uint32_t line = 0;
  std::vector<merge_diff> merges;  // document order
};

struct engine_entry {
  std::string id;
  std::string name;
  std::string path;
  dotted_version version;
  std::uint64_t size = 0;
  dotted_version minimum;
  std::uint32_t line = 0;
};

struct program_entry {
  std::string section;  // the section name as written, e.g. "Info_1000_1_1_1"
  std::optional<dotted_version> version;
  std::optional<dotted_version> build;
  std::optional<std::string> path;  // absent when the section has no Path=
  std::uint64_t size = 0;
  std::uint32_t line = 0;  // the Path= line, or the section header without one
};

// What an agent at a given pattern version should fetch.
struct update_choice {
  bool is_diff = false;  // true: a Merge diff from the agent's version; false: the full file
  std::string path;
  std::uint64_t size = 0;
  pattern_version to;  // the version the agent has after applying it
};

class index {
 public:
  index() = default;  // an empty document

  const std::vector<line>& lines() const noexcept { return lines_; }

  // The value of the first `key` in the first section called `section` (both case-insensitive;
  // "" for lines before the first section), or nothing.
  std::optional<std::string_view> value(std::string_view section, std::string_view key) const;

  // Every file the index names, in document order, each path once. A mirror fetches these plus
  // signature_path(p) for every p where needs_signature(p).
  const std::vector<listed_file>& files() const noexcept { return files_; }

  // The component's full file and its diffs; nothing when no P.<id>=… line names it (Merge
  // lines without one are still listed by files()). `id` is compared case-insensitively.
  std::optional<pattern_component> pattern(std::string_view id) const;
  const std::vector<pattern_component>& patterns() const noexcept { return patterns_; }
  const std::vector<engine_entry>& engines() const noexcept { return engines_; }
  const std::vector<program_entry>& programs() const noexcept { return programs_; }

  // The first Merge diff whose from-version is `local` and whose file name shows it leads to the
  // current version, else the full file. Nothing when the component has no full file or `local`
  // is already current or newer (never a downgrade). A diff whose name does not show `<to>` is
  // mirrored but never chosen: applying it could leave the agent at an unknown version.
  std::optional<update_choice> choose_update(std::string_view id, pattern_version local) const;

 private:
  friend class detail::index_parser;

  std::vector<line> lines_;
  std::vector<listed_file> files_;
  std::vector<pattern_component> patterns_;
  std::vector<engine_entry> engines_;
  std::vector<program_entry> programs_;
};

// Parses a whole server.ini. Never throws on bad input; the first problem is returned.
parse_result<index> parse(std::string_view text);

// The document's exact bytes.
std::string serialize(const index& doc);

// The document's bytes with every Server.<n>= and Https= value in [Server] sections replaced by
// `mirror_base_url`; keys, spacing, comments, order and every other byte are unchanged. Without a
// [Server] section the result equals serialize(doc). Fails with errc::bad_url when the URL has
// control characters (they could start a new line) or is empty.
result<std::string> rewrite_server_section(const index& doc, std::string_view mirror_base_url);

}  // namespace lanrelay::activeupdate

template <>
struct boost::system::is_error_code_enum<lanrelay::activeupdate::errc> : std::true_type {};
