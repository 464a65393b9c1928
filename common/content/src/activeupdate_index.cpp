#include "lanrelay/content/activeupdate_index.hpp"
#include "lanrelay/base/text_format.hpp"

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

#include <algorithm>
#include <limits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace lanrelay::activeupdate {
namespace {

std::string activeupdate_message(errc value) {
  switch (value) {
    case errc::syntax:
      return "the ActiveUpdate index (server.ini) has a malformed line; the index was not used";
    case errc::bad_path:
      return "the ActiveUpdate index names a file path that is not a safe relative path; the "
             "index was not used, nothing was written";
    case errc::bad_size:
      return "the ActiveUpdate index has a file size that is not an unsigned decimal number";
    case errc::bad_version:
      return "the ActiveUpdate index has a version that does not parse (patterns 1667900 or "
             "16.679.00, engines and programs Major.Minor.Build)";
    case errc::duplicate_key:
      return "the ActiveUpdate index lists the same key twice in one section";
    case errc::conflicting_entry:
      return "the ActiveUpdate index lists the same file twice with different sizes";
    case errc::too_large:
      return "the ActiveUpdate index is larger than any real server.ini; it was not used";
    case errc::bad_url:
      return "the mirror URL for the [Server] section is empty or has control characters";
  }
  return "unknown ActiveUpdate index error " + std::to_string(static_cast<int>(value));
}

// Trimmed from keys, values and fields. '\r' is here for a last line that ends in a lone CR.
constexpr std::string_view blanks = " \t\r";
constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";

std::string_view trim(std::string_view s) noexcept { return lanrelay::trim(s, blanks); }

constexpr char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::string lowered(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    c = lower(c);
  }
  return out;
}

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

bool all_digits(std::string_view s) noexcept {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (!is_digit(c)) {
      return false;
    }
  }
  return true;
}

std::optional<std::uint64_t> parse_size(std::string_view s) noexcept {
  if (!all_digits(s)) {
    return std::nullopt;
  }
  constexpr auto max = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t value = 0;
  for (char c : s) {
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (max - digit) / 10) {
      return std::nullopt;
    }
    value = value * 10 + digit;
  }
  return value;
}

// Component ids (<id> of P.<id>, E.<id>) and Path_<NAME> names.
bool is_component_id(std::string_view s) noexcept {
  if (s.empty() || s.size() > 64) {
    return false;
  }
  for (char c : s) {
    const bool ok = is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const auto at = s.find(sep, start);
    if (at == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, at - start));
    start = at + 1;
  }
}

std::vector<std::string_view> split_fields(std::string_view value) {
  auto fields = split(value, ',');
  for (auto& f : fields) {
    f = trim(f);
  }
  return fields;
}

// Untrusted text quoted for a log line: non-printable bytes escaped, long text shortened.
std::string quoted(std::string_view s) {
  constexpr std::size_t max_shown = 160;
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size() && i < max_shown; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\') {
      out += "\\x";
      append_hex(out, c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > max_shown) {
    out += "...";
  }
  out += '"';
  return out;
}

// Why `path` is refused, or nothing when it is a safe relative path.
std::optional<std::string_view> path_problem(std::string_view path) noexcept {
  if (path.empty()) {
    return "it is empty";
  }
  if (path.size() > max_path_length) {
    return "it is longer than 1024 bytes";
  }
  if (path.front() == '/') {
    return "it is absolute (starts with '/')";
  }
  std::size_t segment_start = 0;
  for (std::size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      const auto segment = path.substr(segment_start, i - segment_start);
      if (segment.empty()) {
        return "it has an empty segment ('//' or a trailing '/')";
      }
      if (segment == "." || segment == "..") {
        return "it has a '.' or '..' segment";
      }
      if (segment.size() > max_path_segment_length) {
        return "it has a segment longer than 255 bytes";
      }
      segment_start = i + 1;
      continue;
    }
    const auto c = static_cast<unsigned char>(path[i]);
    if (c == '\\') {
      return "it has a backslash";
    }
    if (c < 0x20 || c >= 0x7F) {
      return "it has a control character or a byte outside printable ASCII";
    }
    if (c == ' ') {
      return "it has a space";
    }
    if (std::string_view("%?#:*\"<>|").find(static_cast<char>(c)) != std::string_view::npos) {
      return "it has one of % ? # : * \" < > |, which mean something else in a URL or a file name";
    }
  }
  return std::nullopt;
}

enum class section_role { none, pattern, engine, info, server, other };

section_role role_of(std::string_view name) noexcept {
  if (iequals(name, "PATTERN")) {
    return section_role::pattern;
  }
  if (iequals(name, "ENGINE")) {
    return section_role::engine;
  }
  if (istarts_with(name, "Info_")) {
    return section_role::info;
  }
  if (iequals(name, "Server")) {
    return section_role::server;
  }
  return section_role::other;
}

bool is_interpreted(section_role role) noexcept {
  return role != section_role::none && role != section_role::other;
}

bool is_server_url_key(std::string_view key) noexcept {
  return iequals(key, "Https") || (istarts_with(key, "Server.") && all_digits(key.substr(7)));
}

// The merge diff's target version, read from a file name `…<from>.<to>` whose <from> equals the
// Merge line's from-version.
std::optional<pattern_version> merge_target(std::string_view path, pattern_version from) {
  const auto slash = path.rfind('/');
  const auto name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  const auto dot = name.rfind('.');
  if (dot == std::string_view::npos) {
    return std::nullopt;
  }
  const auto to_text = name.substr(dot + 1);
  const auto before = name.substr(0, dot);
  std::size_t from_start = before.size();
  while (from_start > 0 && is_digit(before[from_start - 1])) {
    --from_start;
  }
  const auto from_text = before.substr(from_start);
  if (!all_digits(to_text) || !all_digits(from_text)) {
    return std::nullopt;
  }
  const auto named_from = pattern_version::parse(from_text);
  const auto to = pattern_version::parse(to_text);
  if (!named_from || !to || *named_from != from) {
    return std::nullopt;
  }
  return *to;
}

}  // namespace

namespace detail {

class index_parser {
 public:
  parse_result<index> run(std::string_view text, index doc) {
    if (text.size() > max_document_bytes) {
      return fail(errc::too_large, 0,
                  "the index is " + std::to_string(text.size()) + " bytes, more than the " +
                      std::to_string(max_document_bytes) + " allowed; this is not a server.ini");
    }
    doc_ = &doc;
    std::size_t start = 0;
    while (start < text.size()) {
      if (doc.lines_.size() == max_document_lines) {
        return fail(errc::too_large, static_cast<std::uint32_t>(max_document_lines + 1),
                    "the index has more than " + std::to_string(max_document_lines) +
                        " lines; this is not a server.ini");
      }
      const auto nl = text.find('\n', start);
      line l;
      if (nl == std::string_view::npos) {
        l.text = std::string(text.substr(start));
        start = text.size();
      } else if (nl > start && text[nl - 1] == '\r') {
        l.text = std::string(text.substr(start, nl - 1 - start));
        l.ending = "\r\n";
        start = nl + 1;
      } else {
        l.text = std::string(text.substr(start, nl - start));
        l.ending = "\n";
        start = nl + 1;
      }
      doc.lines_.push_back(std::move(l));
      if (auto failed = classify(doc.lines_.size() - 1)) {
        return std::move(*failed);
      }
    }
    for (std::size_t i = 0; i < components_.size(); ++i) {
      if (has_full_[i]) {
        doc.patterns_.push_back(std::move(components_[i]));
      }
    }
    for (std::size_t i = 0; i < programs_.size(); ++i) {
      if (program_file_[i]) {
        doc.files_[*program_file_[i]].version = program_version_text_[i];
      }
      doc.programs_.push_back(std::move(programs_[i]));
    }
    return doc;
  }

 private:
  using failure = std::optional<parse_result<index>>;

  static parse_result<index> fail(errc code, std::uint32_t line_number, std::string message) {
    return parse_error{code, line_number, std::move(message)};
  }

  failure classify(std::size_t at) {
    auto& l = doc_->lines_[at];
    const auto number = static_cast<std::uint32_t>(at + 1);
    const std::string_view text = l.text;
    const std::size_t skip = (at == 0 && text.starts_with(utf8_bom)) ? utf8_bom.size() : 0;
    const auto body = text.substr(skip);
    const auto first = body.find_first_not_of(blanks);
    l.section = section_;
    if (first == std::string_view::npos) {
      l.kind = line_kind::blank;
      return std::nullopt;
    }
    if (body[first] == ';' || body[first] == '#') {
      l.kind = line_kind::comment;
      return std::nullopt;
    }
    if (body[first] == '[') {
      const auto close = body.find(']', first);
      if (close == std::string_view::npos) {
        return fail(errc::syntax, number, "section header " + quoted(trim(body)) + " has no closing ']'");
      }
      const auto after = trim(body.substr(close + 1));
      if (!after.empty() && after.front() != ';' && after.front() != '#') {
        return fail(errc::syntax, number,
                    "unexpected text " + quoted(after) + " after the section header");
      }
      const auto name = trim(body.substr(first + 1, close - first - 1));
      if (name.empty()) {
        return fail(errc::syntax, number, "the section header has no name");
      }
      l.kind = line_kind::section;
      l.name = std::string(name);
      section_ = at + 1;
      l.section = section_;
      role_ = role_of(name);
      section_key_ = lowered(name);
      if (role_ == section_role::info) {
        open_program(name, number);
      }
      return std::nullopt;
    }
    const auto eq = body.find('=');
    const auto key = eq == std::string_view::npos ? std::string_view{} : trim(body.substr(0, eq));
    if (key.empty()) {
      if (is_interpreted(role_)) {
        return fail(errc::syntax, number,
                    "expected key=value, a comment or a section header, found " + quoted(trim(body)));
      }
      l.kind = line_kind::other;
      return std::nullopt;
    }
    const auto raw_value = body.substr(eq + 1);
    const auto lead = raw_value.find_first_not_of(blanks);
    l.kind = line_kind::entry;
    l.name = std::string(key);
    l.value = std::string(trim(raw_value));
    l.value_begin = skip + eq + 1 + (lead == std::string_view::npos ? 0 : lead);
    switch (role_) {
      case section_role::pattern:
        return pattern_entry(l.name, l.value, number);
      case section_role::engine:
        return engine_entry_line(l.name, l.value, number);
      case section_role::info:
        return info_entry(l.name, l.value, number);
      case section_role::server:
        if (is_server_url_key(l.name)) {
          return claim_key(l.name, number);
        }
        return std::nullopt;
      case section_role::none:
      case section_role::other:
        return std::nullopt;
    }
    return std::nullopt;
  }

  // Interpreted keys may appear once per section name (repeated sections are one section).
  failure claim_key(std::string_view key, std::uint32_t number) {
    auto id = section_key_;
    id += '\n';
    id += lowered(key);
    if (!claimed_.insert(std::move(id)).second) {
      return fail(errc::duplicate_key, number,
                  "key " + quoted(key) + " appears twice in [" + section_key_ +
                      "]; an index must name each file once");
    }
    return std::nullopt;
  }

  failure check_fields(std::string_view key, const std::vector<std::string_view>& fields,
                       std::size_t wanted, std::string_view layout, std::uint32_t number) {
    if (fields.size() < wanted) {
      return fail(errc::syntax, number,
                  quoted(key) + " expects " + std::string(layout) + ", found " +
                      std::to_string(fields.size()) + " field" + (fields.size() == 1 ? "" : "s"));
    }
    return std::nullopt;
  }

  failure check_path(std::string_view key, std::string_view path, std::uint32_t number) {
    if (const auto problem = path_problem(path)) {
      return fail(errc::bad_path, number,
                  quoted(key) + ": path " + quoted(path) + " is refused: " + std::string(*problem) +
                      "; a mirror only writes relative paths inside its tree");
    }
    return std::nullopt;
  }

  failure read_size(std::string_view key, std::string_view text, std::uint64_t& out, std::uint32_t number) {
    const auto size = parse_size(text);
    if (!size) {
      return fail(errc::bad_size, number,
                  quoted(key) + ": size " + quoted(text) + " is not an unsigned decimal number of bytes");
    }
    out = *size;
    return std::nullopt;
  }

  failure read_pattern_version(std::string_view key, std::string_view text, pattern_version& out,
                               std::uint32_t number) {
    const auto v = pattern_version::parse(text);
    if (!v) {
      return fail(errc::bad_version, number,
                  quoted(key) + ": version " + quoted(text) +
                      " is not a pattern version (1667900 or 16.679.00)");
    }
    out = *v;
    return std::nullopt;
  }

  failure read_dotted_version(std::string_view key, std::string_view text, dotted_version& out,
                              std::uint32_t number) {
    const auto v = dotted_version::parse(text);
    if (!v) {
      return fail(errc::bad_version, number,
                  quoted(key) + ": version " + quoted(text) +
                      " is not a dotted version (Major.Minor.Build, e.g. 12.500.1004)");
    }
    out = *v;
    return std::nullopt;
  }

  // Adds a file to files(); a second listing of the same path must agree on its size.
  failure add_file(listed_file f) {
    last_added_.reset();
    const auto [it, inserted] = file_at_.try_emplace(f.path, doc_->files_.size());
    if (!inserted) {
      const auto& earlier = doc_->files_[it->second];
      if (earlier.size != f.size) {
        return fail(errc::conflicting_entry, f.line,
                    "path " + quoted(f.path) + " is listed with size " + std::to_string(f.size) +
                        " here and " + std::to_string(earlier.size) + " on line " +
                        std::to_string(earlier.line));
      }
      return std::nullopt;
    }
    last_added_ = doc_->files_.size();
    doc_->files_.push_back(std::move(f));
    return std::nullopt;
  }

  std::size_t component_slot(std::string_view id) {
    const auto [it, inserted] = component_at_.try_emplace(lowered(id), components_.size());
    if (inserted) {
      components_.push_back(pattern_component{});
      components_.back().id = std::string(id);
      has_full_.push_back(false);
    }
    return it->second;
  }

  failure pattern_entry(std::string_view key, std::string_view value, std::uint32_t number) {
    if (istarts_with(key, "Path_")) {
      const auto name = key.substr(5);
      if (!is_component_id(name)) {
        return fail(errc::syntax, number,
                    quoted(key) + ": the name after Path_ must be 1 to 64 characters from A-Z a-z 0-9 _ -");
      }
      if (auto failed = claim_key(key, number)) {
        return failed;
      }
      const auto fields = split_fields(value);
      listed_file f;
      if (auto failed = check_fields(key, fields, 2, "<path>,<size>", number)) {
        return failed;
      }
      if (auto failed = check_path(key, fields[0], number)) {
        return failed;
      }
      if (auto failed = read_size(key, fields[1], f.size, number)) {
        return failed;
      }
      f.path = std::string(fields[0]);
      f.kind = file_kind::path_entry;
      f.component = std::string(name);
      f.line = number;
      return add_file(std::move(f));
    }
    if (!istarts_with(key, "P.")) {
      return std::nullopt;  // MergeCount= and keys this parser does not know
    }
    const auto parts = split(key.substr(2), '.');
    const bool full = parts.size() == 1;
    const bool merge = parts.size() == 3 && iequals(parts[1], "Merge");
    if (!full && !merge) {
      return std::nullopt;  // P.<id>.MergeCount= and unknown forms
    }
    const auto id = parts[0];
    if (!is_component_id(id)) {
      return fail(errc::syntax, number,
                  quoted(key) + ": the component id must be 1 to 64 characters from A-Z a-z 0-9 _ -");
    }
    if (merge && !all_digits(parts[2])) {
      return fail(errc::syntax, number, quoted(key) + ": the Merge number must be decimal digits");
    }
    if (auto failed = claim_key(key, number)) {
      return failed;
    }
    const auto fields = split_fields(value);
    if (auto failed = check_fields(key, fields, 3,
                                   full ? "<path>,<version>,<size>" : "<path>,<from version>,<size>",
                                   number)) {
      return failed;
    }
    if (auto failed = check_path(key, fields[0], number)) {
      return failed;
    }
    pattern_version version;
    if (auto failed = read_pattern_version(key, fields[1], version, number)) {
      return failed;
    }
    listed_file f;
    if (auto failed = read_size(key, fields[2], f.size, number)) {
      return failed;
    }
    f.path = std::string(fields[0]);
    f.component = std::string(id);
    f.line = number;
    const auto slot = component_slot(id);
    auto& component = components_[slot];
    if (full) {
      has_full_[slot] = true;
      component.path = f.path;
      component.version = version;
      component.size = f.size;
      component.line = number;
      f.kind = file_kind::pattern_full;
      f.version = std::string(fields[1]);
    } else {
      component.merges.push_back(
          merge_diff{f.path, version, merge_target(f.path, version), f.size, std::string(parts[2]), number});
      f.kind = file_kind::pattern_merge;
      f.from_version = std::string(fields[1]);
    }
    return add_file(std::move(f));
  }

  failure engine_entry_line(std::string_view key, std::string_view value, std::uint32_t number) {
    if (!istarts_with(key, "E.") || key.find('.', 2) != std::string_view::npos) {
      return std::nullopt;
    }
    const auto id = key.substr(2);
    if (!is_component_id(id)) {
      return fail(errc::syntax, number,
                  quoted(key) + ": the engine id must be 1 to 64 characters from A-Z a-z 0-9 _ -");
    }
    if (auto failed = claim_key(key, number)) {
      return failed;
    }
    const auto fields = split_fields(value);
    if (auto failed = check_fields(key, fields, 5, "<name>,<path>,<version>,<size>,<minimum version>",
                                   number)) {
      return failed;
    }
    if (fields[0].empty()) {
      return fail(errc::syntax, number, quoted(key) + ": the engine name is empty");
    }
    if (auto failed = check_path(key, fields[1], number)) {
      return failed;
    }
    engine_entry e;
    e.id = std::string(id);
    e.name = std::string(fields[0]);
    e.path = std::string(fields[1]);
    e.line = number;
    if (auto failed = read_dotted_version(key, fields[2], e.version, number)) {
      return failed;
    }
    if (auto failed = read_size(key, fields[3], e.size, number)) {
      return failed;
    }
    if (auto failed = read_dotted_version(key, fields[4], e.minimum, number)) {
      return failed;
    }
    listed_file f{e.path, e.size, file_kind::engine, e.id, std::string(fields[2]), {}, number};
    doc_->engines_.push_back(std::move(e));
    return add_file(std::move(f));
  }

  void open_program(std::string_view name, std::uint32_t number) {
    const auto [it, inserted] = program_at_.try_emplace(lowered(name), programs_.size());
    if (inserted) {
      program_entry p;
      p.section = std::string(name);
      p.line = number;
      programs_.push_back(std::move(p));
      program_version_text_.emplace_back();
      program_file_.emplace_back();
    }
    program_ = it->second;
  }

  failure info_entry(std::string_view key, std::string_view value, std::uint32_t number) {
    auto& program = programs_[program_];
    const auto component = program.section.substr(5);
    if (iequals(key, "Version") || iequals(key, "Build")) {
      if (auto failed = claim_key(key, number)) {
        return failed;
      }
      dotted_version v;
      if (auto failed = read_dotted_version(key, value, v, number)) {
        return failed;
      }
      if (iequals(key, "Version")) {
        program.version = v;
        program_version_text_[program_] = std::string(value);
      } else {
        program.build = v;
      }
      return std::nullopt;
    }
    if (!iequals(key, "Path")) {
      return std::nullopt;
    }
    if (auto failed = claim_key(key, number)) {
      return failed;
    }
    const auto fields = split_fields(value);
    if (auto failed = check_fields(key, fields, 2, "<path>,<size>", number)) {
      return failed;
    }
    if (auto failed = check_path(key, fields[0], number)) {
      return failed;
    }
    listed_file f;
    if (auto failed = read_size(key, fields[1], f.size, number)) {
      return failed;
    }
    f.path = std::string(fields[0]);
    f.kind = file_kind::program;
    f.component = component;
    f.line = number;
    program.path = f.path;
    program.size = f.size;
    program.line = number;
    if (auto failed = add_file(std::move(f))) {
      return failed;
    }
    program_file_[program_] = last_added_;
    return std::nullopt;
  }

  index* doc_ = nullptr;
  std::size_t section_ = 0;
  section_role role_ = section_role::none;
  std::string section_key_;
  std::unordered_set<std::string> claimed_;
  std::unordered_map<std::string, std::size_t> file_at_;
  std::vector<pattern_component> components_;
  std::vector<bool> has_full_;
  std::unordered_map<std::string, std::size_t> component_at_;
  std::vector<program_entry> programs_;
  std::unordered_map<std::string, std::size_t> program_at_;
  // Parallel to programs_: the Version= text, and which files_ entry is the program's file
  // (Version= may follow Path=, so files() gets the version once the document is read).
  std::vector<std::string> program_version_text_;
  std::vector<std::optional<std::size_t>> program_file_;
  std::optional<std::size_t> last_added_;  // files_ index of the last add_file, if it was new
  std::size_t program_ = 0;
};

}  // namespace detail

const boost::system::error_category& activeupdate_category() noexcept {
  static const error_category_of<errc> category(
      "lanrelay.activeupdate", 0x6c72617569647831ULL, activeupdate_message);
  return category;
}

std::string parse_error::to_string(std::string_view file) const {
  std::string out(file);
  out += ':';
  out += std::to_string(line);
  out += ": ";
  out += message;
  return out;
}

void throw_exception_from_error(const parse_error& e, const boost::source_location& loc) {
  boost::throw_exception(boost::system::system_error(e.error_code(), e.to_string()), loc);
}

bool is_safe_relative_path(std::string_view path) noexcept { return !path_problem(path); }

bool needs_signature(std::string_view path) noexcept {
  return path.size() > 4 && iequals(path.substr(path.size() - 4), ".zip");
}

bool is_valid_source_name(std::string_view name) noexcept {
  return !name.empty() && name.size() <= 64 && name != "." && name != ".." &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
         });
}

std::optional<std::string> segment_item_name(std::string_view path) {
  constexpr std::size_t max_name = 128;  // is_valid_name's limit
  std::string out;
  for (const char c : path) {
    const auto u = static_cast<unsigned char>(c);
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '_' || c == '-';
    if (plain) {
      out += c;
    } else {
      out += '+';
      append_hex(out, u);
    }
  }
  if (out.empty() || out.size() > max_name || out.front() == '.' || out.front() == '-') {
    return std::nullopt;
  }
  return out;
}

std::optional<std::string> path_from_segment_item_name(std::string_view name) {
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') {
      return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
      return c - 'a' + 10;
    }
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (name[i] != '+') {
      out += name[i];
      continue;
    }
    if (i + 2 >= name.size()) {
      return std::nullopt;
    }
    const int hi = nibble(name[i + 1]);
    const int lo = nibble(name[i + 2]);
    if (hi < 0 || lo < 0) {
      return std::nullopt;
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  if (segment_item_name(out) != name) {
    return std::nullopt;  // not the canonical spelling: "+61" for 'a', uppercase hex...
  }
  return out;
}

std::string signature_path(std::string_view path) {
  std::string out(path.substr(0, path.size() - 4));
  out += path.ends_with(".ZIP") ? ".SIG" : ".sig";
  return out;
}

std::string_view to_string(file_kind kind) noexcept {
  switch (kind) {
    case file_kind::pattern_full:
      return "pattern";
    case file_kind::pattern_merge:
      return "pattern merge";
    case file_kind::engine:
      return "engine";
    case file_kind::program:
      return "program";
    case file_kind::path_entry:
      return "path entry";
  }
  return "unknown";
}

std::optional<std::string_view> index::value(std::string_view section, std::string_view key) const {
  for (const auto& l : lines_) {
    if (l.kind != line_kind::entry || !iequals(l.name, key)) {
      continue;
    }
    const std::string_view name = l.section == 0 ? std::string_view{} : lines_[l.section - 1].name;
    if (iequals(name, section)) {
      return l.value;
    }
  }
  return std::nullopt;
}

std::optional<pattern_component> index::pattern(std::string_view id) const {
  for (const auto& p : patterns_) {
    if (iequals(p.id, id)) {
      return p;
    }
  }
  return std::nullopt;
}

std::optional<update_choice> index::choose_update(std::string_view id, pattern_version local) const {
  for (const auto& p : patterns_) {
    if (!iequals(p.id, id)) {
      continue;
    }
    if (local >= p.version) {
      return std::nullopt;
    }
    for (const auto& m : p.merges) {
      if (m.from == local && m.to == p.version) {
        return update_choice{true, m.path, m.size, p.version};
      }
    }
    return update_choice{false, p.path, p.size, p.version};
  }
  return std::nullopt;
}

parse_result<index> parse(std::string_view text) { return detail::index_parser{}.run(text, index{}); }

std::string serialize(const index& doc) {
  std::string out;
  for (const auto& l : doc.lines()) {
    out += l.text;
    out += l.ending;
  }
  return out;
}

result<std::string> rewrite_server_section(const index& doc, std::string_view mirror_base_url) {
  if (mirror_base_url.empty()) {
    return errc::bad_url;
  }
  for (char c : mirror_base_url) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      return errc::bad_url;
    }
  }
  const auto& lines = doc.lines();
  std::string out;
  for (const auto& l : lines) {
    const bool in_server = l.section != 0 && iequals(lines[l.section - 1].name, "Server");
    if (l.kind == line_kind::entry && in_server && is_server_url_key(l.name)) {
      out.append(l.text, 0, l.value_begin);
      out += mirror_base_url;
      out.append(l.text, l.value_begin + l.value.size());
    } else {
      out += l.text;
    }
    out += l.ending;
  }
  return out;
}

}  // namespace lanrelay::activeupdate
