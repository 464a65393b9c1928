#include "lanrelay/agent/offer_selection.hpp"

#include <algorithm>
#include <set>

namespace lanrelay::agent {

selection select_offers(std::vector<candidate> offers, const wanted_item& wanted,
                        const trust_lookup& trust, std::mt19937_64& random) {
  selection out;
  std::set<std::string> urls;
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
    if (!urls.insert(o.url).second) {
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
