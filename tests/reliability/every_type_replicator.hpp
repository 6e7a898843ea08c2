#pragma once
// A replicator with a column of every ColumnType and every way of finding a
// value (nested data_key, event_key, optional, defaulter, converters), shared
// by the malformed-input tests and the payload fuzz target. Core only.
//
// Resources look like:
//   {"id": "ch_1", "info": {"title": "t"}, "count": 3, "big": 9007199254740993,
//    "price": 12.5, "ratio": 0.25, "flag": true, "at": "2024-01-01T00:00:00Z",
//    "created_unix": 1700000000, "day": "2024-02-29", "meta": {...}, "tags": ["a"],
//    "ints": [1], "bigs": [2], "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
//    "csv": "a, b", "num_text": "\"12\"", "ref": "ch_abc", "ms": 1700000000000}
// Required: id, info.title, count, at. Everything else may be missing.

#include <memory>
#include <string>
#include <vector>

#include "webhookdb/converters.hpp"
#include "webhookdb/pagination.hpp"
#include "webhookdb/registry.hpp"
#include "webhookdb/replicator.hpp"

namespace webhookdb::test {

class EveryTypeReplicator final : public Replicator {
 public:
  using Replicator::Replicator;

  [[nodiscard]] static Descriptor descriptor() {
    return {.name = "every_type_v1",
            .resource_name_singular = "Every Type",
            .resource_name_plural = "Every Types",
            .supports_webhooks = true,
            .supports_backfill = true,
            .factory = Descriptor::factory_for<EveryTypeReplicator>()};
  }

  // Small batches, so each page of a backfill is written before the next.
  [[nodiscard]] BackfillOptions backfill_options() const override { return {.batch_size = 2, .pipelined = false}; }

  // GET <api_url>?cursor=<token>, {"data": [...], "next_cursor": ...}.
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>&,
                                   const CancellationToken& cancel) override {
    return pages_.fetch(*context().http, HttpRequest{.url = integration().api_url}, token, cancel);
  }

  // The table's denormalized columns, in order (for tests that check values).
  [[nodiscard]] static std::vector<Column> columns() {
    return {
        Column("title", ColumnType::text).key({"info", "title"}),
        Column("count", ColumnType::integer),
        Column("big", ColumnType::bigint).optional(),
        Column("price", ColumnType::numeric).optional(),
        Column("ratio", ColumnType::double_precision).optional(),
        Column("flag", ColumnType::boolean).optional(),
        Column("at", ColumnType::timestamptz).convert(converters::time()).indexed(),
        Column("created", ColumnType::timestamptz).key("created_unix").convert(converters::unix_timestamp()).optional(),
        Column("created_ms", ColumnType::timestamptz).key("ms").convert(converters::unix_timestamp_ms()).optional(),
        Column("day", ColumnType::date).optional(),
        Column("day_of", ColumnType::date).key("at").convert(converters::date()),
        Column("meta", ColumnType::jsonb).optional(),
        Column("tags", ColumnType::text_array).optional(),
        Column("ints", ColumnType::integer_array).optional(),
        Column("bigs", ColumnType::bigint_array).optional(),
        Column("uid", ColumnType::uuid).optional(),
        Column("kind", ColumnType::text).key("kind").event({"type"}).optional(),
        Column("status", ColumnType::text).optional().defaults([](const ConvertContext&) {
          return nlohmann::json("unknown");
        }),
        Column("csv", ColumnType::text_array).convert(converters::comma_separated()).optional(),
        Column("num", ColumnType::integer).key("num_text").convert(converters::to_integer()).optional(),
        Column("code", ColumnType::text).key("ref").convert(converters::regex_capture("^ch_([a-z0-9]+)$")).optional(),
    };
  }

 protected:
  [[nodiscard]] Column remote_key_column() const override { return Column("id", ColumnType::text); }
  [[nodiscard]] std::vector<Column> denormalized_columns() const override { return columns(); }
  [[nodiscard]] UpdateRule update_rule() const override { return UpdateRule::when_newer("at"); }

 private:
  pagination::Cursor pages_{{.limit = 0}};
};

}  // namespace webhookdb::test
