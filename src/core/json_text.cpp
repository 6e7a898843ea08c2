#include "webhookdb/json_text.hpp"

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

nlohmann::json strip_nuls(const nlohmann::json& doc) {
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
      for (const auto& item : doc) out.push_back(strip_nuls(item));
      return out;
    }
    case json::value_t::object: {
      json out = json::object();
      for (auto it = doc.begin(); it != doc.end(); ++it) {
        std::string key = it.key();
        std::erase(key, '\0');
        out[key] = strip_nuls(it.value());
      }
      return out;
    }
    default:
      return doc;
  }
}

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
  return strip_encoded_nuls(text);
}

}  // namespace webhookdb
