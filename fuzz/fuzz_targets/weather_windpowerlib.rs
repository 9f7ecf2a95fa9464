//! The windpowerlib weather parser: no panic, errors inside the text, values within their ranges.
#![no_main]

#[path = "common/weather.rs"]
mod weather;

use libfuzzer_sys::fuzz_target;
use verdant_core::energy::WeatherFormat;

fuzz_target!(|data: &[u8]| weather::check(data, WeatherFormat::Windpowerlib));
