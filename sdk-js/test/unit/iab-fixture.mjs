// The IAB tests' fixtures: the server's test vendor list
// (server/domain/testdata/iab/vendor-list.json) and the iab section of its
// test policy (server/domain/testdata/iab/policy.yaml) as GET /v1/policy
// returns it.

import { readFileSync } from "node:fs";

export const gvlFile = JSON.parse(readFileSync(new URL("../../../server/domain/testdata/iab/vendor-list.json", import.meta.url), "utf8"));
export const VENDORS = [1, 2, 10, 25, 755];
export const iab = {
  cmp_id: 300,
  cmp_version: 1,
  tcf: {
    regions: ["eea", "uk"],
    publisher_country: "DE",
    purpose_one_treatment: false,
    vendors: VENDORS,
    purposes: [
      { purpose: "functional", consent: [1], legitimate_interest: [], special_features: [] },
      { purpose: "ads", consent: [2, 3, 4, 7], legitimate_interest: [2], special_features: [1, 2] },
      { purpose: "analytics", consent: [5, 6, 8, 9, 10, 11], legitimate_interest: [7, 8, 9, 10, 11], special_features: [] },
    ],
    vendor_list_url: "/v1/iab/vendor-list.json",
  },
  gpp: {
    regions: ["us_opt_out"],
    purpose: "ads",
    state_sections: ["usca"],
    notices: { sharing: true, sale_opt_out: true, sharing_opt_out: true, targeted_advertising_opt_out: true },
    mspa: { covered_transaction: false, mode: "" },
  },
};
