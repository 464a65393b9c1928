#include "lanrelay/agent/relay_tls.hpp"

#include "lanrelay/base/file_io.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <unistd.h>

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

relay_pins::relay_pins(std::optional<std::filesystem::path> state_dir) {
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
  for (const auto& [host, list] : document.as_object()) {
    if (!list.is_array() || pins_.size() >= max_relays) {
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
      pins_.emplace(std::string(host), std::move(fingerprints));
    }
  }
}

void relay_pins::learn(std::string_view host, const std::vector<sha256_digest>& fingerprints) {
  const auto it = pins_.find(host);
  if (fingerprints.empty()) {
    if (it != pins_.end()) {
      pins_.erase(it);
      save();
    }
    return;
  }
  if (it != pins_.end() && it->second == fingerprints) {
    return;
  }
  if (it == pins_.end() && pins_.size() >= max_relays) {
    pins_.erase(pins_.begin());
  }
  pins_[std::string(host)] = fingerprints;
  save();
}

std::vector<sha256_digest> relay_pins::find(std::string_view host) const {
  const auto it = pins_.find(host);
  return it != pins_.end() ? it->second : std::vector<sha256_digest>{};
}

std::optional<secure_route> relay_pins::route(const boost::urls::url& http_url,
                                              const relay_https_options& options) const {
  if (options.mode == relay_https_mode::off ||
      http_url.scheme_id() != boost::urls::scheme::http) {
    return std::nullopt;
  }
  auto pins = find(http_url.host());
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
  for (const auto& [host, fingerprints] : pins_) {
    json::array list;
    for (const auto& f : fingerprints) {
      list.emplace_back(to_hex(f));
    }
    document[host] = std::move(list);
  }
  const auto tmp = file_->string() + ".tmp." + std::to_string(::getpid());
  if (auto written = write_atomically(tmp, *file_, json::serialize(document)); !written) {
    spdlog::warn("event=relay_pins_not_saved file={} error=\"{}\"", file_->string(),
                 written.error().message());
  }
}

}  // namespace lanrelay::agent
