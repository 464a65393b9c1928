#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <string>
#include <system_error>

namespace lanrelay {

// Errors of lanrelay's own domain. I/O failures keep their system error codes.
enum class errc {
  invalid_name = 1,     // item name or version has characters outside the allowed set
  invalid_version,      // version text does not parse for the item's kind
  invalid_kind,         // not one of installer, pattern, file
  not_found,            // no such item in the store
  size_mismatch,        // bytes received differ in length from what was expected
  digest_mismatch,      // SHA-256 of the bytes differs from what was expected
  too_large,            // item is larger than the store's size limit
  store_full,           // pinned items leave no room for the new item
  corrupt_index,        // the store's index file cannot be read
  invalid_config,       // configuration failed validation
  already_exists,       // an item with that key exists with different content
};

const boost::system::error_category& lanrelay_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), lanrelay_category()};
}

template <typename T>
using result = boost::system::result<T>;

// The boost::system category of one error enum (libtorrent's error_code.hpp is the model): its
// name, a fixed identifier (category comparisons stay correct across shared-library boundaries)
// and the message of each value. Each domain defines its category once, in its .cpp:
//
//   const boost::system::error_category& http_category() noexcept {
//     static const error_category_of<http_errc> category("lanrelay.http", 0x6c616e72656c6168ULL,
//                                                        http_message);
//     return category;
//   }
//
// Thread safety: immutable after construction.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
template <typename Enum>
class error_category_of final : public boost::system::error_category {
 public:
  using message_function = std::string (*)(Enum value);

  constexpr error_category_of(const char* category_name, unsigned long long id,
                              message_function describe) noexcept
      : error_category(id), name_(category_name), message_(describe) {}

  const char* name() const noexcept override { return name_; }
  std::string message(int value) const override { return message_(static_cast<Enum>(value)); }

 private:
  const char* name_;
  message_function message_;
};
#pragma GCC diagnostic pop

}  // namespace lanrelay

template <>
struct boost::system::is_error_code_enum<lanrelay::errc> : std::true_type {};
