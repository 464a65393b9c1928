#include "lanrelay/agent/relay_tls.hpp"

#include "lanrelay/base/file_io.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>

namespace lanrelay::agent {
namespace {

namespace json = boost::json;

constexpr std::string_view pins_file_name = "relay-tls.json";
// Ample for the relays of a segment; a larger file is not ours.
constexpr std::size_t max_pins_file = 256 * 1024;
constexpr std::size_t max_relays = 256;

}  // namespace

std::optional<relay_https_mode> parse_relay_https_mode(std::string_view text) {
  if (text == "off") {
    return relay_https_mode::off;
  }
  if (text == "prefer") {
    return relay_https_mode::prefer;
  }
  if (text == "require") {
    return relay_https_mode::require;
  }
  return std::nullopt;
}

std::string_view to_string(relay_https_mode mode) noexcept {
  switch (mode) {
    case relay_https_mode::off: return "off";
    case relay_https_mode::prefer: return "prefer";
    case relay_https_mode::require: return "require";
  }
  return "prefer";
}

relay_pins::relay_pins(std::optional<std::filesystem::path> state_dir,
                       std::vector<public_key> site_keys) {
  for (const auto& key : site_keys) {
    site_keys_.push_back(key.to_string());
  }
  if (!state_dir) {
    return;
  }
  file_ = *state_dir / pins_file_name;
  const auto text = read_small_file(*file_, max_pins_file);
  if (!text) {
    return;
  }
  boost::system::error_code ec;
  const auto document = json::parse(*text, ec);
  if (ec || !document.is_object()) {
    spdlog::warn("event=relay_pins_ignored file={} hint=\"not a JSON object; the relays' "
                 "certificates are learned again from their catalogs\"",
                 file_->string());
    return;
  }
  // {"<site key>": {"<relay id>": ["<fingerprint hex>", ...]}}; anything else (such as the
  // per-address lists of earlier versions) is skipped and learned again.
  std::size_t relays = 0;
  for (const auto& [key, site] : document.as_object()) {
    if (!site.is_object() || !parse_public_key(key)) {
      continue;
    }
    for (const auto& [relay_id, list] : site.as_object()) {
      if (!list.is_array() || relays >= max_relays) {
        continue;
      }
      std::vector<sha256_digest> fingerprints;
      for (const auto& entry : list.as_array()) {
        if (const auto* hex = entry.if_string()) {
          if (auto digest = parse_sha256_hex(*hex)) {
            fingerprints.push_back(*digest);
          }
        }
      }
      if (!fingerprints.empty()) {
        relays_[std::string(key)].emplace(std::string(relay_id), std::move(fingerprints));
        ++relays;
      }
    }
  }
}

void relay_pins::learn(const public_key& key, std::string_view relay_id,
                       const std::vector<sha256_digest>& fingerprints) {
  const auto key_text = key.to_string();
  auto site = relays_.find(key_text);
  if (fingerprints.empty()) {
    if (site != relays_.end() && site->second.erase(std::string(relay_id)) > 0) {
      if (site->second.empty()) {
        relays_.erase(site);
      }
      save();
    }
    return;
  }
  if (site != relays_.end()) {
    const auto known = site->second.find(relay_id);
    if (known != site->second.end() && known->second == fingerprints) {
      return;
    }
  }
  std::size_t relays = 0;
  for (const auto& [_, by_id] : relays_) {
    relays += by_id.size();
  }
  if (relays >= max_relays && (site == relays_.end() || !site->second.contains(relay_id))) {
    auto& oldest = relays_.begin()->second;
    oldest.erase(oldest.begin());
    if (oldest.empty()) {
      relays_.erase(relays_.begin());
    }
  }
  relays_[key_text][std::string(relay_id)] = fingerprints;
  save();
}

std::vector<sha256_digest> relay_pins::certificates() const {
  std::vector<sha256_digest> out;
  for (const auto& [key, by_id] : relays_) {
    if (!site_keys_.empty() &&
        std::find(site_keys_.begin(), site_keys_.end(), key) == site_keys_.end()) {
      continue;
    }
    for (const auto& [_, fingerprints] : by_id) {
      for (const auto& f : fingerprints) {
        if (std::find(out.begin(), out.end(), f) == out.end()) {
          out.push_back(f);
        }
      }
    }
  }
  return out;
}

std::optional<secure_route> relay_pins::route(const boost::urls::url& http_url,
                                              const relay_https_options& options) const {
  if (options.mode == relay_https_mode::off ||
      http_url.scheme_id() != boost::urls::scheme::http) {
    return std::nullopt;
  }
  auto pins = certificates();
  if (pins.empty()) {
    return std::nullopt;
  }
  secure_route out;
  out.url = http_url;
  out.url.set_scheme_id(boost::urls::scheme::https);
  out.url.set_port_number(options.port);
  out.tls.pinned_certificates = std::move(pins);
  return out;
}

void relay_pins::save() const {
  if (!file_) {
    return;
  }
  json::object document;
  for (const auto& [key, by_id] : relays_) {
    json::object site;
    for (const auto& [relay_id, fingerprints] : by_id) {
      json::array list;
      for (const auto& f : fingerprints) {
        list.emplace_back(to_hex(f));
      }
      site[relay_id] = std::move(list);
    }
    document[key] = std::move(site);
  }
  const auto tmp = file_->string() + ".tmp." + std::to_string(::getpid());
  if (auto written = write_atomically(tmp, *file_, json::serialize(document)); !written) {
    spdlog::warn("event=relay_pins_not_saved file={} error=\"{}\"", file_->string(),
                 written.error().message());
  }
}

}  // namespace lanrelay::agent
