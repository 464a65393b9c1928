#include "lanrelay/agent/offer_selection.hpp"

#include <boost/url/parse.hpp>

#include <algorithm>
#include <set>

namespace lanrelay::agent {
namespace {

// The sender's address without an IPv6 zone, as a key.
boost::asio::ip::address without_zone(boost::asio::ip::address address) {
  if (address.is_v6()) {
    auto v6 = address.to_v6();
    v6.scope_id(0);
    return v6;
  }
  return address;
}

}  // namespace

bool url_names_sender(const candidate& c) {
  const auto url = boost::urls::parse_uri(c.offer.url);
  if (!url) {
    return false;
  }
  const auto sender = without_zone(c.from.address());
  switch (url->host_type()) {
    case boost::urls::host_type::ipv4:
      return sender.is_v4() && sender.to_v4().to_bytes() == url->host_ipv4_address().to_bytes();
    case boost::urls::host_type::ipv6:
      return sender.is_v6() && sender.to_v6().to_bytes() == url->host_ipv6_address().to_bytes();
    default:
      return false;
  }
}

selection select_offers(std::vector<candidate> offers, const wanted_item& wanted,
                        const trust_lookup& trust, std::mt19937_64& random,
                        const catalog_url_lookup& named) {
  selection out;
  std::set<std::string> urls;
  std::set<boost::asio::ip::address> hosts;
  for (candidate& c : offers) {
    const auto& o = c.offer;
    const bool answers = o.kind == wanted.kind && o.name == wanted.name &&
                         version_satisfies(wanted.kind, o.version, wanted.version) &&
                         (!wanted.sha256 || *wanted.sha256 == o.sha256);
    if (!answers) {
      ++out.not_qualifying;
      continue;
    }
    const auto digest = trust(o);
    if (!digest || digest->size != o.size || digest->sha256 != o.sha256) {
      ++out.untrusted;
      continue;
    }
    if (!url_names_sender(c)) {
      if (!named || !named(o.url)) {
        ++out.foreign_host;
        continue;
      }
      c.named_by_catalog = true;
    }
    if (!urls.insert(o.url).second) {
      continue;  // the same offer again (the query reached the responder more than once)
    }
    // One address answering with several URLs (or cookies) is one holder. A responder that
    // answers over IPv4 and IPv6 counts once per family: if one family's listener is down, the
    // other offer still works.
    if (!hosts.insert(without_zone(c.from.address())).second) {
      ++out.same_host;
      continue;
    }
    c.digest = *digest;
    out.ordered.push_back(std::move(c));
  }
  std::shuffle(out.ordered.begin(), out.ordered.end(), random);
  std::stable_partition(out.ordered.begin(), out.ordered.end(),
                        [](const candidate& c) { return c.offer.free_slots > 0; });
  return out;
}

}  // namespace lanrelay::agent
