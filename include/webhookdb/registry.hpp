#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "webhookdb/descriptor.hpp"
#include "webhookdb/export.hpp"

namespace webhookdb {

// Descriptors by name; makes the replicator for an integration.
class WEBHOOKDB_EXPORT Registry {
 public:
  // Throws InvalidPrecondition on an empty name, a duplicate name or a missing factory.
  void add(Descriptor descriptor);
  [[nodiscard]] const Descriptor* find(const std::string& name) const;
  // Throws InvalidPrecondition naming the unknown descriptor.
  [[nodiscard]] const Descriptor& get(const std::string& name) const;
  [[nodiscard]] std::vector<std::string> names() const;
  // The replicator for `integration` (by its service_name).
  [[nodiscard]] std::unique_ptr<Replicator> make(const ServiceIntegration& integration,
                                                 const ReplicatorContext& context) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const Descriptor>> descriptors_;
};

}  // namespace webhookdb
