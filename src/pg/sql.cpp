#include "pg/sql.hpp"

#include <cstdio>

#include "webhookdb/errors.hpp"
#include "webhookdb/json_text.hpp"

namespace webhookdb::pg::sql {

bool valid_utf8(std::string_view text) noexcept {
  return is_valid_utf8(text);
}

std::string printable(std::string_view text, std::size_t max) {
  std::string out;
  const bool utf8 = valid_utf8(text);
  for (std::size_t i = 0; i < text.size() && out.size() < max; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7F || (!utf8 && c >= 0x80)) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (out.size() >= max) out += "...";
  return out;
}

std::string ident(std::string_view name, std::string_view what) {
  if (name.empty()) throw BrokenSpecification("empty " + std::string(what) + " name");
  if (name.find('\0') != std::string_view::npos) {
    throw BrokenSpecification(std::string(what) + " name '" + printable(name) + "' contains a NUL byte");
  }
  if (!valid_utf8(name)) {
    throw BrokenSpecification(std::string(what) + " name '" + printable(name) + "' is not valid UTF-8");
  }
  if (name.size() > kMaxIdentifierBytes) {
    throw BrokenSpecification(std::string(what) + " name '" + printable(name) + "' is " +
                              std::to_string(name.size()) +
                              " bytes long; PostgreSQL identifiers are at most 63 bytes");
  }
  std::string out;
  out.reserve(name.size() + 2);
  out += '"';
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string qualified(std::string_view schema, std::string_view name) {
  return ident(schema, "schema") + "." + ident(name, "table");
}

std::string literal(std::string_view text) {
  if (text.find('\0') != std::string_view::npos) throw BrokenSpecification("SQL literal contains a NUL byte");
  if (!valid_utf8(text)) throw BrokenSpecification("SQL literal '" + printable(text) + "' is not valid UTF-8");
  std::string out;
  out.reserve(text.size() + 2);
  out += '\'';
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  out += '\'';
  return out;
}

std::string path_literal(const std::vector<std::string>& path) {
  std::string out = "ARRAY[";
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (i > 0) out += ',';
    out += literal(path[i]);
  }
  out += "]::text[]";
  return out;
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  if (from.empty()) return text;
  std::size_t pos = 0;
  while ((pos = text.find(from, pos)) != std::string::npos) {
    text.replace(pos, from.size(), to);
    pos += to.size();
  }
  return text;
}

}  // namespace webhookdb::pg::sql
