// A stand-in for an ad network's frame: it loads only once the visitor
// allowed ads (the page gates it with data-consent="ads" data-consent-src),
// and it sets the kind of cookie the SDK clears again when ads are denied.
document.cookie = '_demo_ads_id=' + Math.random().toString(36).slice(2, 10) + '; path=/; max-age=31536000; SameSite=Lax';
window.demoAdLoaded = true;
