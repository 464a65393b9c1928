#include "cache_command.hpp"
#include "command_error.hpp"
#include "state_owner.hpp"

#include "lanrelay/base/file_io.hpp"
#include "lanrelay/content/store.hpp"
#include "lanrelay/relay/config.hpp"

#include <boost/json.hpp>
#include <fmt/chrono.h>
#include <fmt/core.h>

#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace lanrelay::cli {
namespace {

// The daemon's configuration as far as the store is concerned: --config, or the defaults;
// --state-dir wins over both.
relay_config store_config(const store_location& where) {
  relay_config config;
  if (!where.config_file && !where.state_dir) {
    auto defaults = default_relay_config();
    if (!defaults.ok()) {
      throw command_error(defaults.diagnostics.front().message);
    }
    config = std::move(defaults.config);
  } else if (where.config_file) {
    auto loaded = load_relay_config(*where.config_file);
    if (!loaded.ok()) {
      std::string text = "the configuration is not valid:";
      for (const auto& d : loaded.diagnostics) {
        text += "\n  " + d.to_string();
      }
      throw command_error(text);
    }
    config = std::move(loaded.config);
  }
  if (where.state_dir) {
    config.state_dir = *where.state_dir;
  }
  return config;
}

// Opens the store, as the state directory's owner when run as root (state_owner.hpp): do
// anything that needs root (reading a file only root may read) before.
std::unique_ptr<content_store> open_store(const store_location& where) {
  const relay_config config = store_config(where);
  become_owner_of(config.state_dir);
  const auto dir = config.state_dir / "cache";
  // The size limit belongs to the daemon's configuration; the command only adds within it.
  auto store = content_store::open({.dir = dir, .max_size = config.cache_max_size});
  if (!store) {
    throw command_error("cannot open the cache at " + dir.string() + ": " +
                        store.error().message());
  }
  return std::move(*store);
}

struct key_options {
  std::string kind;
  std::string name;
  std::string version;

  item_key to_key() const {
    const auto parsed_kind = parse_item_kind(kind);
    if (!parsed_kind) {
      throw command_error("--kind must be installer, pattern or file, not '" + kind + "'");
    }
    auto canonical = canonical_version(*parsed_kind, version);
    if (!canonical) {
      throw command_error("version '" + version + "' is not valid for a " + kind + ": " +
                          canonical.error().message());
    }
    if (!is_valid_name(name)) {
      throw command_error("name '" + name +
                          "' is not valid: use 1 to 128 of A-Z a-z 0-9 . _ + -, not starting "
                          "with . or -");
    }
    return item_key{*parsed_kind, name, *canonical};
  }
};

void add_key_options(CLI::App& cmd, key_options& key) {
  cmd.add_option("--kind", key.kind, "installer, pattern or file")->required();
  cmd.add_option("--name", key.name, "Item name, e.g. agent-x64 or icrc")->required();
  cmd.add_option("--version", key.version, "Item version, e.g. 14.0.1234 or 1667900")->required();
}

std::string describe(const item& it) {
  return fmt::format("{}/{}/{} ({} bytes, sha256 {}{})", to_string(it.key.kind), it.key.name,
                     it.key.version, it.size, to_hex(it.sha256), it.pinned ? ", pinned" : "");
}

std::int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

void add_cache_commands(CLI::App& app, store_location& where) {
  auto* cache = app.add_subcommand("cache", "Manage the relay's cache (works while lanrelayd runs)");
  cache->require_subcommand(1);
  // --state-dir and --config may follow the subcommand: `cache add --state-dir D FILE`.
  cache->fallthrough();
  cache->add_option("--state-dir", where.state_dir, "State directory of the relay");
  cache->add_option("--config", where.config_file, "lanrelayd configuration file");

  struct add_args {
    std::filesystem::path file;
    key_options key;
    std::string sha256;
    bool pin = false;
  };
  auto args = std::make_shared<add_args>();
  auto* add = cache->add_subcommand("add", "Copy a file into the cache as an item");
  add->fallthrough();
  add->add_option("FILE", args->file, "File to add")->required()->check(CLI::ExistingFile);
  add_key_options(*add, args->key);
  add->add_option("--sha256", args->sha256, "Expected SHA-256 (hex); the add fails on a mismatch");
  add->add_flag("--pin", args->pin, "Never evict this item");
  add->callback([args, &where] {
    run_guarded([&] {
      std::optional<sha256_digest> expected;
      if (!args->sha256.empty()) {
        expected = parse_sha256_hex(args->sha256);
        if (!expected) {
          throw command_error("--sha256 must be 64 hexadecimal digits");
        }
      }
      const item_key key = args->key.to_key();
      // Opened before open_store() may give up root: the file may be readable by root only.
      const unique_fd source = open_fd(args->file, O_RDONLY | O_CLOEXEC);
      if (!source) {
        throw command_error("cannot read " + args->file.string() + ": " + std::strerror(errno));
      }
      auto store = open_store(where);
      auto added = store->add_from(source.get(), key, expected, args->pin);
      if (!added) {
        throw command_error("cannot add " + args->file.string() + ": " + added.error().message());
      }
      fmt::print("added {}\n", describe(*added));
    });
  });

  auto list_json = std::make_shared<bool>(false);
  auto* list = cache->add_subcommand("list", "List cached items, most recently used first");
  list->fallthrough();
  list->add_flag("--json", *list_json, "Print a JSON array");
  list->callback([list_json, &where] {
    run_guarded([&] {
      auto store = open_store(where);
      auto items = store->list();
      std::sort(items.begin(), items.end(),
                [](const item& a, const item& b) { return a.last_used > b.last_used; });
      if (*list_json) {
        boost::json::array out;
        for (const item& it : items) {
          out.push_back(boost::json::object{{"kind", to_string(it.key.kind)},
                                            {"name", it.key.name},
                                            {"version", it.key.version},
                                            {"size", it.size},
                                            {"sha256", to_hex(it.sha256)},
                                            {"pinned", it.pinned},
                                            {"added_at", unix_seconds(it.added_at)},
                                            {"last_used", unix_seconds(it.last_used)}});
        }
        fmt::print("{}\n", boost::json::serialize(out));
        return;
      }
      fmt::print("{:<10} {:<24} {:<16} {:>14} {:<14} {}\n", "KIND", "NAME", "VERSION", "SIZE",
                 "SHA256", "PINNED");
      for (const item& it : items) {
        fmt::print("{:<10} {:<24} {:<16} {:>14} {:<14} {}\n", to_string(it.key.kind), it.key.name,
                   it.key.version, it.size, to_hex(it.sha256).substr(0, 12),
                   it.pinned ? "yes" : "no");
      }
      fmt::print("{} items, {} of {} bytes used\n", items.size(), store->total_size(),
                 store->max_size());
    });
  });

  auto remove_key = std::make_shared<key_options>();
  auto* remove = cache->add_subcommand("remove", "Remove an item from the cache");
  remove->fallthrough();
  add_key_options(*remove, *remove_key);
  remove->callback([remove_key, &where] {
    run_guarded([&] {
      const item_key key = remove_key->to_key();
      auto store = open_store(where);
      if (auto r = store->remove(key); !r) {
        throw command_error("cannot remove " + remove_key->name + ": " + r.error().message());
      }
      fmt::print("removed {}/{}/{}\n", to_string(key.kind), key.name, key.version);
    });
  });

  for (const bool pinned : {true, false}) {
    auto pin_key = std::make_shared<key_options>();
    auto* pin = cache->add_subcommand(pinned ? "pin" : "unpin",
                                      pinned ? "Keep an item from eviction"
                                             : "Let an item be evicted again");
    pin->fallthrough();
    add_key_options(*pin, *pin_key);
    pin->callback([pin_key, pinned, &where] {
      run_guarded([&] {
        const item_key key = pin_key->to_key();
        auto store = open_store(where);
        if (auto r = store->set_pinned(key, pinned); !r) {
          throw command_error("cannot change " + pin_key->name + ": " + r.error().message());
        }
        fmt::print("{} {}/{}/{}\n", pinned ? "pinned" : "unpinned", to_string(key.kind), key.name,
                   key.version);
      });
    });
  }
}

}  // namespace lanrelay::cli
