// Payload -> row: a replicator with a column of every ColumnType (nested
// data_key, event_key, optional, defaulter, converters) turns fuzzed JSON into
// a row. Anything but a row or an InvalidInput is a bug; a row must hold
// values of its columns' types, and its data must serialize for jsonb.
//
// Input: first byte selects the mode.
//   even: the rest is JSON text (a resource, or {"resource": ..., "event": ...})
//   odd:  the rest is raw bytes, split at '|' into string values of a
//         resource (so strings may hold NUL and invalid UTF-8)

#include <cstdint>
#include <string>
#include <vector>

#include "reliability/every_type_replicator.hpp"
#include "reliability/fuzz/fuzz_support.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/json_limits.hpp"
#include "webhookdb/json_text.hpp"
#include "webhookdb/payload.hpp"
#include "webhookdb/time.hpp"

namespace {

using nlohmann::json;
using webhookdb::ColumnType;

webhookdb::Replicator& replicator() {
  static const webhookdb::Descriptor descriptor = webhookdb::test::EveryTypeReplicator::descriptor();
  static webhookdb::ServiceIntegration integration = [] {
    webhookdb::ServiceIntegration si;
    si.id = 1;
    si.opaque_id = "svi_fuzz";
    si.service_name = descriptor.name;
    si.table_name = "fuzz";
    return si;
  }();
  static std::unique_ptr<webhookdb::Replicator> r =
      descriptor.factory(descriptor, integration, webhookdb::ReplicatorContext{});
  return *r;
}

bool is_int(const json& v) { return v.is_number_integer() || v.is_number_unsigned(); }

void check_value(const webhookdb::Column& col, const json& v) {
  const std::string where = "column " + col.name + " = " + v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (v.is_null()) return;
  switch (col.type) {
    case ColumnType::text:
      FUZZ_CHECK(v.is_string(), where);
      break;
    case ColumnType::uuid:
      FUZZ_CHECK(v.is_string() && v.get_ref<const std::string&>().size() == 36, where);
      break;
    case ColumnType::integer:
      FUZZ_CHECK(is_int(v), where);
      if (v.is_number_integer()) {
        FUZZ_CHECK(v.get<std::int64_t>() >= INT32_MIN && v.get<std::int64_t>() <= INT32_MAX, where);
      } else {
        FUZZ_CHECK(v.get<std::uint64_t>() <= INT32_MAX, where);
      }
      break;
    case ColumnType::bigint:
      FUZZ_CHECK(v.is_number_integer() || (v.is_number_unsigned() && v.get<std::uint64_t>() <= INT64_MAX), where);
      break;
    case ColumnType::numeric:
    case ColumnType::double_precision:
      FUZZ_CHECK(v.is_number(), where);
      break;
    case ColumnType::boolean:
      FUZZ_CHECK(v.is_boolean(), where);
      break;
    case ColumnType::timestamptz:
      FUZZ_CHECK(v.is_string() && webhookdb::parse_timestamp(v.get_ref<const std::string&>()).has_value(), where);
      break;
    case ColumnType::date:
      FUZZ_CHECK(v.is_string() && v.get_ref<const std::string&>().size() >= 10, where);
      break;
    case ColumnType::jsonb:
      break;
    case ColumnType::text_array:
      FUZZ_CHECK(v.is_array(), where);
      for (const auto& e : v) FUZZ_CHECK(e.is_string() || e.is_null(), where);
      break;
    case ColumnType::integer_array:
      FUZZ_CHECK(v.is_array(), where);
      for (const auto& e : v) FUZZ_CHECK(e.is_null() || is_int(e), where);
      break;
    case ColumnType::bigint_array:
      FUZZ_CHECK(v.is_array(), where);
      for (const auto& e : v) FUZZ_CHECK(e.is_null() || is_int(e), where);
      break;
  }
}

void row_for(const json& resource, const json* event) {
  std::optional<webhookdb::Row> row;
  try {
    row = replicator().row_for(webhookdb::Payload{.resource = resource, .event = event});
  } catch (const webhookdb::InvalidInput&) {
    return;  // a clear rejection is fine
  }
  // Any other exception escapes: libFuzzer reports it as a crash.
  if (!row) return;
  const auto columns = webhookdb::test::EveryTypeReplicator::columns();
  FUZZ_CHECK(row->values.size() == columns.size(), "value count");
  FUZZ_CHECK(row->key.is_string(), "the remote key column is text");
  for (std::size_t i = 0; i < columns.size(); ++i) check_value(columns[i], row->values[i]);
  // What the store would write: JSON for jsonb, NULs removed, or a clear
  // InvalidInput for invalid UTF-8.
  try {
    const std::string text = webhookdb::to_jsonb_text(row->data, "data");
    FUZZ_CHECK(json::parse(text, nullptr, false) == webhookdb::strip_nuls(row->data), "jsonb text round trip");
  } catch (const webhookdb::InvalidInput&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest = webhookdb::test::as_text(data + 1, size - 1);
  if ((data[0] & 1U) == 0) {
    auto parsed = webhookdb::try_parse_json_limited(rest, {.max_bytes = 1 << 20, .max_depth = 64});
    if (!parsed) return 0;
    const json& doc = parsed.value;
    if (doc.is_object() && doc.contains("resource")) {
      const json* event = doc.contains("event") ? &doc.at("event") : nullptr;
      if (event != nullptr && event->is_null()) event = nullptr;
      row_for(doc.at("resource"), event);
    } else {
      row_for(doc, nullptr);
    }
    return 0;
  }
  // Raw strings into the places converters and type checks look at.
  static const std::vector<std::vector<std::string>> slots = {
      {"id"}, {"info", "title"}, {"at"}, {"ref"}, {"csv"}, {"num_text"}, {"uid"}, {"day"}, {"created_unix"}, {"count"}};
  json resource = {{"id", "x"}, {"info", {{"title", "t"}}}, {"count", 1}, {"at", "2024-01-01T00:00:00Z"}};
  std::size_t slot = 0;
  std::size_t start = 0;
  while (start <= rest.size() && slot < slots.size()) {
    auto bar = rest.find('|', start);
    if (bar == std::string_view::npos) bar = rest.size();
    json* at = &resource;
    for (const auto& step : slots[slot]) at = &(*at)[step];
    *at = std::string(rest.substr(start, bar - start));
    ++slot;
    start = bar + 1;
  }
  row_for(resource, nullptr);
  return 0;
}
