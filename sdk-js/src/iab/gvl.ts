// Types only: importing this file costs no bytes.

// The vendor list as the UI reads it: the GVL v3 JSON's field names (the
// GVL class of @iabtechlabtcf/core has the same ones).
export interface Named {
  id: number;
  name: string;
  description?: string;
  illustrations?: string[];
}
export interface Stack extends Named {
  purposes: number[];
  specialFeatures: number[];
}
export interface Vendor {
  id: number;
  name: string;
  purposes?: number[];
  legIntPurposes?: number[];
  flexiblePurposes?: number[];
  specialPurposes?: number[];
  features?: number[];
  specialFeatures?: number[];
  cookieMaxAgeSeconds?: number | null;
  usesCookies?: boolean;
  cookieRefresh?: boolean;
  usesNonCookieAccess?: boolean;
  dataRetention?: { stdRetention?: number; purposes?: Record<string, number>; specialPurposes?: Record<string, number> };
  urls?: { langId: string; privacy?: string; legIntClaim?: string }[];
  dataDeclaration?: number[];
  deletedDate?: string;
}
export interface VendorList {
  purposes: Record<string, Named>;
  specialPurposes?: Record<string, Named>;
  features?: Record<string, Named>;
  specialFeatures?: Record<string, Named>;
  stacks?: Record<string, Stack>;
  dataCategories?: Record<string, Named>;
  vendors: Record<string, Vendor>;
}
