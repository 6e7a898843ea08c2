#include "webhookdb/registry.hpp"

#include "webhookdb/errors.hpp"
#include "webhookdb/replicator.hpp"

namespace webhookdb {

void Registry::add(Descriptor descriptor) {
  if (descriptor.name.empty()) throw InvalidPrecondition("descriptor has no name");
  if (!descriptor.factory) throw InvalidPrecondition("descriptor '" + descriptor.name + "' has no factory");
  descriptor.webhook_topic.validate("descriptor '" + descriptor.name + "'");
  std::lock_guard lock(mutex_);
  const std::string name = descriptor.name;
  auto [it, inserted] = descriptors_.emplace(name, std::make_shared<const Descriptor>(std::move(descriptor)));
  if (!inserted) throw InvalidPrecondition("descriptor '" + name + "' is already registered");
}

const Descriptor* Registry::find(const std::string& name) const {
  std::lock_guard lock(mutex_);
  auto it = descriptors_.find(name);
  return it == descriptors_.end() ? nullptr : it->second.get();
}

const Descriptor& Registry::get(const std::string& name) const {
  const Descriptor* d = find(name);
  if (d == nullptr) throw InvalidPrecondition("no replicator registered as '" + name + "'");
  return *d;
}

std::vector<std::string> Registry::names() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  out.reserve(descriptors_.size());
  for (const auto& [name, _] : descriptors_) out.push_back(name);
  return out;
}

std::unique_ptr<Replicator> Registry::make(const ServiceIntegration& integration, const ReplicatorContext& context) const {
  const Descriptor& d = get(integration.service_name);
  auto replicator = d.factory(d, integration, context);
  if (!replicator) throw InvariantViolation("factory of '" + d.name + "' returned no replicator");
  return replicator;
}

}  // namespace webhookdb
