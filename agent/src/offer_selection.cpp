#include "lanrelay/agent/offer_selection.hpp"

#include "lanrelay/segment/offer_rules.hpp"

#include <algorithm>
#include <set>

namespace lanrelay::agent {

bool url_names_sender(const candidate& c) {
  return discovery::url_names(c.offer.url, c.from.address());
}

selection select_offers(std::vector<candidate> offers, const wanted_item& wanted,
                        const trust_lookup& trust, std::mt19937_64& random,
                        const catalog_url_lookup& named) {
  selection out;
  std::set<std::string> urls;
  std::set<boost::asio::ip::address> hosts;
  for (candidate& c : offers) {
    const auto& o = c.offer;
    if (!discovery::answers(o, wanted.kind, wanted.name, wanted.version, wanted.sha256)) {
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
    if (!hosts.insert(discovery::without_zone(c.from.address())).second) {
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
