#include "webhookdb/json_text.hpp"

#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

#include "webhookdb/errors.hpp"

namespace webhookdb {

std::string strip_encoded_nuls(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '\\' || i + 1 >= text.size()) {
      out += c;
      continue;
    }
    // An escape: \u0000 is dropped; any other escape (\\ included) is copied
    // whole, so the u0000 after an escaped backslash survives.
    if (text[i + 1] == 'u' && text.substr(i + 2, 4) == "0000") {
      i += 5;
      continue;
    }
    out += c;
    out += text[i + 1];
    ++i;
  }
  return out;
}

bool is_valid_utf8(std::string_view text) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* const end = p + text.size();
  while (p < end) {
    // Eight ASCII bytes at a time: payloads are mostly ASCII.
    while (end - p >= 8) {
      std::uint64_t word = 0;
      std::memcpy(&word, p, sizeof word);
      if ((word & 0x8080808080808080ULL) != 0) break;
      p += 8;
    }
    if (p == end) break;
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    std::size_t n = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // past U+10FFFF
    } else {
      return false;
    }
    if (static_cast<std::size_t>(end - p) <= n) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (std::size_t i = 2; i <= n; ++i) {
      if (p[i] < 0x80 || p[i] > 0xBF) return false;
    }
    p += n + 1;
  }
  return true;
}

std::optional<std::string> find_invalid_utf8(const nlohmann::json& doc) {
  using nlohmann::json;
  // Each node remembers its parent and its place there (a key, pointing into
  // `doc`, or an index), so no string is built unless a node fails.
  struct Node {
    const json* value;
    std::size_t parent;  // index in `nodes`; npos for the root
    const std::string* key;  // null in an array
    std::size_t index;
  };
  constexpr std::size_t root = static_cast<std::size_t>(-1);
  const auto name_of = [](const std::string* key, std::size_t index) {
    if (key == nullptr) return std::to_string(index);
    if (is_valid_utf8(*key)) return *key;
    // A key that is itself invalid: shown with U+FFFD, without the quotes.
    const std::string quoted = json(*key).dump(-1, ' ', false, json::error_handler_t::replace);
    return quoted.substr(1, quoted.size() - 2);
  };
  const auto path_of = [&](const std::vector<Node>& nodes, std::size_t at, const std::string* key,
                           std::size_t index) {
    std::vector<std::string> parts{name_of(key, index)};
    for (std::size_t i = at; i != root; i = nodes[i].parent) {
      if (nodes[i].parent != root) parts.push_back(name_of(nodes[i].key, nodes[i].index));
    }
    std::string out;
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
      if (!out.empty()) out += '.';
      out += *it;
    }
    return out;
  };
  if (!doc.is_structured()) {
    if (doc.is_string() && !is_valid_utf8(doc.get_ref<const std::string&>())) return std::string();
    return std::nullopt;
  }
  std::vector<Node> nodes{{&doc, root, nullptr, 0}};
  std::vector<std::size_t> todo{0};
  while (!todo.empty()) {
    const std::size_t at = todo.back();
    todo.pop_back();
    const json& value = *nodes[at].value;
    const bool object = value.is_object();
    std::size_t index = 0;
    for (auto it = value.begin(); it != value.end(); ++it, ++index) {
      const json& child = *it;
      const std::string* key = object ? &it.key() : nullptr;
      if (object && !is_valid_utf8(*key)) return path_of(nodes, at, key, index);
      if (child.is_string()) {
        if (!is_valid_utf8(child.get_ref<const std::string&>())) return path_of(nodes, at, key, index);
      } else if (child.is_structured()) {
        nodes.push_back({&child, at, key, index});
        todo.push_back(nodes.size() - 1);
      }
    }
  }
  return std::nullopt;
}

namespace {

// `key` with each NUL written as \u0000, for messages.
std::string shown_key(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '\0') {
      out += "\\u0000";
    } else {
      out += c;
    }
  }
  return out;
}

// Two keys of one object equal once NULs are removed: stripping would keep
// one value and drop the other without a word.
struct NulKeyCollision {
  std::string path;     // of the key holding a NUL ("info.k\u0000")
  std::string sibling;  // of the key it would become ("info.k")
};

// The first such collision in `doc`; walks without recursion. Paths are
// built as the walk goes, which is cheap enough: callers run it only on
// documents that hold a NUL.
std::optional<NulKeyCollision> find_nul_key_collision(const nlohmann::json& doc) {
  struct Node {
    const nlohmann::json* value;
    std::string path;
  };
  const auto child_path = [](const std::string& parent, const std::string& name) {
    return parent.empty() ? name : parent + "." + name;
  };
  std::vector<Node> todo{{&doc, ""}};
  while (!todo.empty()) {
    Node node = std::move(todo.back());
    todo.pop_back();
    const nlohmann::json& value = *node.value;
    if (value.is_object()) {
      std::map<std::string, const std::string*> stripped;  // key without NULs -> the key
      for (auto it = value.begin(); it != value.end(); ++it) {
        std::string plain = it.key();
        std::erase(plain, '\0');
        const auto [at, fresh] = stripped.emplace(plain, &it.key());
        if (!fresh) {
          // Report the key that holds a NUL (both may; then the later one).
          const bool later_has_nul = it.key().find('\0') != std::string::npos;
          const std::string& with_nul = later_has_nul ? it.key() : *at->second;
          const std::string& other = later_has_nul ? *at->second : it.key();
          return NulKeyCollision{child_path(node.path, shown_key(with_nul)),
                                 child_path(node.path, shown_key(other))};
        }
        if (it->is_structured()) todo.push_back({&*it, child_path(node.path, shown_key(it.key()))});
      }
    } else if (value.is_array()) {
      std::size_t index = 0;
      for (const auto& item : value) {
        if (item.is_structured()) todo.push_back({&item, child_path(node.path, std::to_string(index))});
        ++index;
      }
    }
  }
  return std::nullopt;
}

[[noreturn]] void refuse(const NulKeyCollision& collision, std::string_view where) {
  throw InvalidInput("JSON object key \"" + collision.path +
                         "\" holds a NUL character; without it (jsonb cannot hold NUL) it would replace \"" +
                         collision.sibling + "\"",
                     std::string(where));
}

nlohmann::json strip_nuls_unchecked(const nlohmann::json& doc);

}  // namespace

nlohmann::json strip_nuls(const nlohmann::json& doc) {
  if (auto collision = find_nul_key_collision(doc)) refuse(*collision, {});
  return strip_nuls_unchecked(doc);
}

namespace {

nlohmann::json strip_nuls_unchecked(const nlohmann::json& doc) {
  using nlohmann::json;
  switch (doc.type()) {
    case json::value_t::string: {
      const auto& s = doc.get_ref<const std::string&>();
      if (s.find('\0') == std::string::npos) return doc;
      std::string out;
      out.reserve(s.size());
      for (char c : s) {
        if (c != '\0') out += c;
      }
      return out;
    }
    case json::value_t::array: {
      json out = json::array();
      for (const auto& item : doc) out.push_back(strip_nuls_unchecked(item));
      return out;
    }
    case json::value_t::object: {
      json out = json::object();
      for (auto it = doc.begin(); it != doc.end(); ++it) {
        std::string key = it.key();
        std::erase(key, '\0');
        out[key] = strip_nuls_unchecked(it.value());
      }
      return out;
    }
    default:
      return doc;
  }
}

}  // namespace

std::string to_jsonb_text(const nlohmann::json& doc, std::string_view where) {
  std::string text;
  try {
    text = doc.dump();
  } catch (const nlohmann::json::type_error& e) {
    if (e.id == 316) {
      throw InvalidInput("invalid UTF-8 in JSON", where.empty() ? std::string("document") : std::string(where));
    }
    throw InvalidInput(std::string("cannot serialize JSON: ") + e.what(), std::string(where));
  }
  if (text.find("\\u0000") == std::string::npos) return text;
  if (auto collision = find_nul_key_collision(doc)) refuse(*collision, where);
  return strip_encoded_nuls(text);
}

}  // namespace webhookdb
