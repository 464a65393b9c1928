#include "lanrelay/agent/au_update.hpp"

#include "lanrelay/base/file_io.hpp"
#include "lanrelay/base/version.hpp"

#include <boost/json.hpp>
#include <boost/url/grammar/ci_string.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/file.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>

namespace lanrelay::agent {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
namespace net = boost::asio;
namespace au = activeupdate;

constexpr std::string_view staging_dir_name = ".lanrelay-staging";
constexpr std::string_view lock_file_name = ".lanrelay-update.lock";
constexpr std::string_view versions_tmp_name = ".lanrelay-versions.json.tmp";
constexpr int versions_format = 1;

bool same_text(std::string_view a, std::string_view b) {
  return boost::urls::grammar::ci_is_equal(a, b);
}

fetch_failure failure(boost::system::error_code code, std::string message) {
  return fetch_failure{code, std::move(message)};
}

std::string describe(const boost::system::error_code& ec) { return ec.message(); }

// The base URL of the tree (ending in '/') and the URL of its server.ini.
struct tree_urls {
  boost::urls::url base;
  boost::urls::url index;
};

tree_urls locate_tree(const boost::urls::url& given) {
  tree_urls out;
  out.base = given;
  out.base.remove_query();
  out.base.remove_fragment();
  std::string path(out.base.encoded_path());
  const std::string_view index_name = "server.ini";
  if (path.size() >= index_name.size() &&
      same_text(std::string_view(path).substr(path.size() - index_name.size()), index_name) &&
      (path.size() == index_name.size() || path[path.size() - index_name.size() - 1] == '/')) {
    out.index = out.base;
    path.resize(path.size() - index_name.size());
  } else if (path.empty() || path.back() != '/') {
    path += '/';
  }
  if (path.empty()) {
    path = "/";
  }
  out.base.set_encoded_path(path);
  if (out.index.empty()) {
    out.index = out.base;
    out.index.set_encoded_path(path + std::string(index_name));
  }
  return out;
}

// AU paths are checked by the parser (no '%', '?', '#', '..'), so they append as they are.
boost::urls::url url_of(const tree_urls& tree, const std::string& path) {
  boost::urls::url url = tree.base;
  url.set_encoded_path(std::string(tree.base.encoded_path()) + path);
  return url;
}

result<void> rename_into_place(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::create_directories(to.parent_path(), ec);
  if (ec) {
    return boost::system::error_code(ec.value(), boost::system::system_category());
  }
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return last_errno();
  }
  return sync_dir(to.parent_path());
}

class update_job {
 public:
  explicit update_job(const au_update_options& options)
      : options_(options),
        staging_(options.dir / staging_dir_name),
        ends_(std::chrono::steady_clock::now() + options.deadline) {}

  net::awaitable<boost::system::result<au_update_outcome, fetch_failure>> run() {
    if (auto problem = prepare_dir()) {
      co_return std::move(*problem);
    }
    auto local = read_local_versions(options_.dir);
    if (!local) {
      co_return failure(local.error(), "cannot read " + (options_.dir / versions_file_name).string() +
                                           ": " + describe(local.error()) +
                                           "; remove it to install every component anew");
    }
    tree_ = locate_tree(options_.index_url);
    outcome_.index_url = std::string(tree_.index.buffer());

    auto index = co_await read_index();
    if (!index) {
      co_return index.error();
    }
    auto plan = plan_update(*index, *local, options_.components);
    if (!plan.unknown.empty()) {
      std::string names;
      for (const auto& u : plan.unknown) {
        names += (names.empty() ? "" : ", ") + u;
      }
      co_return failure(make_error_code(errc::not_found),
                        "not in " + outcome_.index_url + ": " + names +
                            " (components are named P.<id> for patterns and E.<id> for engines)");
    }

    bool recorded_change = false;
    for (auto& planned : plan.components) {
      component_outcome done;
      done.plan = planned;
      if (planned.action != au_action::current) {
        std::vector<std::string> files;
        co_await install(done, files);
        if (done.ok) {
          local->components[planned.name] = installed_component{planned.to, std::move(files)};
          recorded_change = true;
        }
      }
      outcome_.components.push_back(std::move(done));
    }
    if (recorded_change) {
      if (auto written = write_local_versions(options_.dir, *local); !written) {
        co_return failure(written.error(),
                          "files installed but the version record could not be written to " +
                              (options_.dir / versions_file_name).string() + ": " +
                              describe(written.error()));
      }
    }
    std::error_code ignored;
    fs::remove_all(staging_, ignored);
    co_return outcome_;
  }

 private:
  // Creates and locks the directory and clears a killed update's staging; the problem if any.
  std::optional<fetch_failure> prepare_dir() {
    std::error_code ec;
    fs::create_directories(options_.dir, ec);
    if (ec) {
      return system_failure(ec.value(), "cannot create " + options_.dir.string());
    }
    lock_ = open_fd(options_.dir / lock_file_name, O_RDWR | O_CREAT, 0644);
    if (!lock_) {
      return system_failure(errno, "cannot open " + (options_.dir / lock_file_name).string());
    }
    if (::flock(lock_.get(), LOCK_EX | LOCK_NB) != 0) {
      return system_failure(errno, "another lanrelay update is running in " + options_.dir.string());
    }
    fs::remove_all(staging_, ec);
    fs::create_directories(staging_, ec);
    if (ec) {
      return system_failure(ec.value(), "cannot create " + staging_.string());
    }
    return std::nullopt;
  }

  static fetch_failure system_failure(int code, const std::string& what) {
    const boost::system::error_code ec(code, boost::system::system_category());
    return failure(ec, what + ": " + describe(ec));
  }

  net::awaitable<boost::system::result<au::index, fetch_failure>> read_index() {
    std::string text;
    fetch_request request{.url = tree_.index,
                          .timeouts = options_.fetch.timeouts,
                          .max_bytes = au::max_document_bytes,
                          .tls = options_.fetch.tls};
    if (options_.fetch.upstream_proxy) {
      request.proxy = co_await options_.fetch.upstream_proxy(tree_.index);
    }
    auto response = co_await http_fetch(request, [&](std::span<const std::byte> chunk) -> result<void> {
      text.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
      return {};
    });
    if (!response) {
      co_return failure(response.error(),
                        "cannot read " + outcome_.index_url + ": " + describe(response.error()));
    }
    if (response->status != 200) {
      co_return failure(make_error_code(errc::not_found),
                        "cannot read " + outcome_.index_url + ": HTTP " +
                            std::to_string(response->status));
    }
    auto parsed = au::parse(text);
    if (!parsed) {
      co_return failure(parsed.error().error_code(),
                        "the index is not usable: " + parsed.error().to_string(outcome_.index_url));
    }
    co_return std::move(*parsed);
  }

  // Gets the planned file and its .sig into staging, checks them, and renames them into place.
  net::awaitable<void> install(component_outcome& done, std::vector<std::string>& files) {
    const auto& plan = done.plan;
    // On the segment the file is kind `file`, name segment_item_name(path), version = listed
    // size; a path too long for a name is fetched from the URL only.
    const auto segment_name = au::segment_item_name(plan.path);
    fetch_options payload = options_.fetch;
    payload.wanted = wanted_item{item_kind::file, segment_name.value_or(plan.path),
                                 std::to_string(plan.size), std::nullopt};
    payload.output = staging_ / plan.path;
    payload.upstream = url_of(tree_, plan.path);
    payload.digest.reset();
    payload.expected_size = plan.size;
    payload.use_discovery = options_.fetch.use_discovery && segment_name.has_value();
    if (!payload.use_discovery) {
      payload.peer_cache = false;
    }
    if (auto made = make_parent(payload.output); !made) {
      fail(done, "cannot create a directory for " + payload.output.string());
      co_return;
    }
    const auto payload_deadline = fetch_deadline();
    if (!payload_deadline) {
      fail(done, "the update's deadline (--deadline) passed before " + plan.path +
                     " could be fetched; nothing installed");
      co_return;
    }
    payload.deadline = *payload_deadline;
    auto got = co_await fetch(payload);
    if (!got) {
      fail(done, "cannot get " + plan.path + " (the index lists " + std::to_string(plan.size) +
                     " bytes): " + got.error().message);
      co_return;
    }
    done.source = got->source;
    done.responder = got->responder;
    done.fallback_reason = got->fallback_reason;
    done.verified = got->verified;
    done.bytes = got->bytes;
    std::error_code ec;
    const auto size = fs::file_size(payload.output, ec);
    if (ec || size != plan.size) {
      fs::remove(payload.output, ec);
      fail(done, "size mismatch for " + plan.path + ": the index lists " +
                     std::to_string(plan.size) + " bytes, " +
                     std::string(agent::to_string(got->source)) +
                     " " + got->responder + " sent " + std::to_string(size) +
                     "; nothing installed");
      co_return;
    }

    std::optional<std::string> signature;
    if (au::needs_signature(plan.path)) {
      signature = au::signature_path(plan.path);
      fetch_options sig = options_.fetch;
      sig.wanted = wanted_item{item_kind::file, *signature, "signature", std::nullopt};
      sig.output = staging_ / *signature;
      sig.upstream = url_of(tree_, *signature);
      sig.digest.reset();
      sig.use_discovery = false;
      sig.peer_cache = false;
      sig.progress = nullptr;
      const auto sig_deadline = fetch_deadline();
      if (!sig_deadline) {
        fail(done, "the update's deadline (--deadline) passed before " + *signature +
                       " could be fetched; nothing installed");
        co_return;
      }
      sig.deadline = *sig_deadline;
      auto got_sig = co_await fetch(sig);
      if (!got_sig) {
        fail(done, "signature " + *signature + ": " + got_sig.error().message);
        co_return;
      }
      if (got_sig->bytes == 0) {
        fail(done, "signature " + *signature + " is empty; nothing installed");
        co_return;
      }
      done.bytes += got_sig->bytes;
      if (auto placed = rename_into_place(sig.output, options_.dir / *signature); !placed) {
        fail(done, "cannot install " + *signature + ": " + describe(placed.error()));
        co_return;
      }
      files.push_back(*signature);
    }
    if (auto placed = rename_into_place(payload.output, options_.dir / plan.path); !placed) {
      fail(done, "cannot install " + plan.path + ": " + describe(placed.error()));
      co_return;
    }
    files.insert(files.begin(), plan.path);
  }

  static result<void> make_parent(const fs::path& file) {
    std::error_code ec;
    fs::create_directories(file.parent_path(), ec);
    if (ec) {
      return boost::system::error_code(ec.value(), boost::system::system_category());
    }
    return {};
  }

  static void fail(component_outcome& done, std::string why) {
    done.ok = false;
    done.error = std::move(why);
    spdlog::warn("event=update_failed item={} error=\"{}\"", done.plan.name, done.error);
  }

  // Each file's fetch gets what is left of the update's deadline (if sooner than its own);
  // nullopt once it has passed.
  std::optional<std::chrono::milliseconds> fetch_deadline() const {
    if (options_.deadline.count() <= 0) {
      return options_.fetch.deadline;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        ends_ - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return std::nullopt;
    }
    return options_.fetch.deadline.count() > 0 ? std::min(left, options_.fetch.deadline) : left;
  }

  const au_update_options& options_;
  fs::path staging_;
  std::chrono::steady_clock::time_point ends_;  // of the whole update (options_.deadline)
  unique_fd lock_;
  tree_urls tree_;
  au_update_outcome outcome_;
};

}  // namespace

std::string component_name(au_component_kind kind, std::string_view id) {
  return (kind == au_component_kind::pattern ? "P." : "E.") + std::string(id);
}

std::string_view to_string(au_action action) noexcept {
  switch (action) {
    case au_action::current: return "current";
    case au_action::diff: return "diff";
    case au_action::full: return "full";
  }
  return "current";
}

bool au_update_outcome::ok() const noexcept {
  return std::all_of(components.begin(), components.end(),
                     [](const component_outcome& c) { return c.ok; });
}

result<local_versions> read_local_versions(const fs::path& dir) {
  const fs::path file = dir / versions_file_name;
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!fs::exists(file, ec) && !ec) {
      return local_versions{};
    }
    return boost::system::error_code(errno, boost::system::system_category());
  }
  std::ostringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  const json::value doc = json::parse(text.str(), ec);
  if (ec || !doc.is_object()) {
    return make_error_code(errc::corrupt_index);
  }
  const auto* components = doc.as_object().if_contains("components");
  if (components == nullptr || !components->is_object()) {
    return make_error_code(errc::corrupt_index);
  }
  local_versions out;
  for (const auto& [name, entry] : components->as_object()) {
    const auto* object = entry.if_object();
    const auto* version = object ? object->if_contains("version") : nullptr;
    const auto* files = object ? object->if_contains("files") : nullptr;
    if (version == nullptr || !version->is_string() || files == nullptr || !files->is_array()) {
      return make_error_code(errc::corrupt_index);
    }
    installed_component c;
    c.version = std::string(version->as_string());
    for (const auto& f : files->as_array()) {
      if (!f.is_string()) {
        return make_error_code(errc::corrupt_index);
      }
      c.files.emplace_back(f.as_string());
    }
    out.components.emplace(std::string(name), std::move(c));
  }
  return out;
}

result<void> write_local_versions(const fs::path& dir, const local_versions& versions) {
  json::object components;
  for (const auto& [name, c] : versions.components) {
    json::array files;
    for (const auto& f : c.files) {
      files.emplace_back(f);
    }
    components[name] = json::object{{"version", c.version}, {"files", std::move(files)}};
  }
  const std::string text =
      json::serialize(json::object{{"format", versions_format}, {"components", components}}) + "\n";
  const fs::path tmp = dir / versions_tmp_name;
  {
    auto fd = open_fd(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (!fd) {
      return last_errno();
    }
    if (auto written = write_all(fd.get(), std::as_bytes(std::span(text))); !written) {
      return written;
    }
    if (auto synced = sync_fd(fd.get()); !synced) {
      return synced;
    }
  }
  if (::rename(tmp.c_str(), (dir / versions_file_name).c_str()) != 0) {
    return last_errno();
  }
  return sync_dir(dir);
}

update_plan plan_update(const au::index& index, const local_versions& local,
                        const std::vector<std::string>& wanted) {
  update_plan plan;
  std::set<std::size_t> matched;
  const auto selected = [&](au_component_kind kind, std::string_view id) {
    if (wanted.empty()) {
      return true;
    }
    bool any = false;
    for (std::size_t i = 0; i < wanted.size(); ++i) {
      if (same_text(wanted[i], component_name(kind, id)) || same_text(wanted[i], id)) {
        matched.insert(i);
        any = true;
      }
    }
    return any;
  };
  const auto local_version = [&](const std::string& name) -> std::optional<std::string> {
    const auto it = local.components.find(name);
    if (it == local.components.end()) {
      return std::nullopt;
    }
    return it->second.version;
  };

  for (const auto& p : index.patterns()) {
    if (!selected(au_component_kind::pattern, p.id)) {
      continue;
    }
    planned_component c;
    c.kind = au_component_kind::pattern;
    c.name = component_name(c.kind, p.id);
    c.from = local_version(c.name);
    c.to = std::to_string(p.version.value);
    const auto have = c.from ? pattern_version::parse(*c.from) : result<pattern_version>(errc::invalid_version);
    const auto choice = index.choose_update(p.id, have ? *have : pattern_version{0});
    if (choice) {
      c.action = choice->is_diff ? au_action::diff : au_action::full;
      c.path = choice->path;
      c.size = choice->size;
    }
    plan.components.push_back(std::move(c));
  }
  for (const auto& e : index.engines()) {
    if (!selected(au_component_kind::engine, e.id)) {
      continue;
    }
    planned_component c;
    c.kind = au_component_kind::engine;
    c.name = component_name(c.kind, e.id);
    c.from = local_version(c.name);
    c.to = e.version.to_string();
    const auto have = c.from ? dotted_version::parse(*c.from) : result<dotted_version>(errc::invalid_version);
    if (!have || *have < e.version) {
      c.action = au_action::full;
      c.path = e.path;
      c.size = e.size;
    }
    plan.components.push_back(std::move(c));
  }
  for (std::size_t i = 0; i < wanted.size(); ++i) {
    if (!matched.contains(i)) {
      plan.unknown.push_back(wanted[i]);
    }
  }
  return plan;
}

net::awaitable<boost::system::result<au_update_outcome, fetch_failure>> update_activeupdate(
    const au_update_options& options) {
  update_job job(options);
  co_return co_await job.run();
}

}  // namespace lanrelay::agent
