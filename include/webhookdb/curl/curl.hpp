#pragma once
// Umbrella header of the curl adapter (target webhookdb::curl).

#include "webhookdb/curl/curl_http_client.hpp"
