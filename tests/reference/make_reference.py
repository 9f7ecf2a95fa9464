#!/usr/bin/env python3
"""Regenerate the reference CSVs that `core/tests/energy_accuracy.rs` compares against.

The references come from the tools the energy models are ported from:

* PV: pvlib's ModelChain, PVWatts DC + PVWatts inverter, Hay-Davies transposition,
  physical (Fresnel) IAM, SAPM open_rack_glass_glass cell temperature, NREL SPA.
* Wind: windpowerlib's ModelChain, logarithmic wind profile, barometric density with a
  linear temperature gradient, density-corrected power curves from the OEDB library.

Run from anywhere:  python3 tests/reference/make_reference.py
It builds a private virtual environment under /tmp (never inside the repository) and
re-executes itself there. Pass --python PATH to use an interpreter that already has
pvlib, windpowerlib and pandas.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
WEATHER = os.path.join(REPO, "core", "data", "weather")
VENV = "/tmp/verdant-ref-venv"
# Pinned: the committed CSVs were made with exactly these.
PACKAGES = ["pvlib==0.16.1", "windpowerlib==0.2.2", "pandas==3.1.1"]

# One array, shared by every PV case and mirrored in energy_accuracy.rs.
PV_CAPACITY_KW = 1000.0
PV_TILT_DEG = 25.0
PV_AZIMUTH_DEG = 180.0
PV_LOSSES_PERCENT = 14.0
PV_DC_AC_RATIO = 1.2
PV_ETA_INV_NOM = 0.96
PV_GAMMA_PDC = -0.004
PV_ALBEDO = 0.25

# (turbine_type, hub_height_m). Heights chosen to exercise every wind-profile branch:
# above the highest measurement, between measurements, exactly at one, nearest to 10 m.
TURBINES = [
    ("E-126/4200", 135.0),
    ("E-82/2350", 108.0),
    ("V90/2000", 80.0),
    ("E-53/800", 40.0),
]


def ensure_environment():
    if "--in-venv" in sys.argv:
        return
    if "--python" in sys.argv:
        python = sys.argv[sys.argv.index("--python") + 1]
    else:
        python = os.path.join(VENV, "bin", "python")
        if not os.path.exists(python):
            subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([python, "-m", "pip", "install", "--quiet", *PACKAGES])
    os.execv(python, [python, os.path.abspath(__file__), "--in-venv"])


def pv_chain(weather, latitude, longitude, altitude):
    """pvlib's PVWatts chain with Verdant's model choices, hourly AC in kW."""
    import pvlib
    from pvlib.location import Location
    from pvlib.modelchain import ModelChain
    from pvlib.pvsystem import PVSystem, Array, FixedMount

    location = Location(latitude, longitude, altitude=altitude)
    array = Array(
        mount=FixedMount(surface_tilt=PV_TILT_DEG, surface_azimuth=PV_AZIMUTH_DEG),
        albedo=PV_ALBEDO,
        module_parameters={"pdc0": PV_CAPACITY_KW * 1000.0, "gamma_pdc": PV_GAMMA_PDC},
        temperature_model_parameters=pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"][
            "open_rack_glass_glass"
        ],
    )
    ac_nameplate_w = PV_CAPACITY_KW * 1000.0 / PV_DC_AC_RATIO
    system = PVSystem(
        arrays=[array],
        # pvlib's PVWatts inverter is sized by its DC input limit: pdc0 = pac0 / eta_inv_nom.
        inverter_parameters={"pdc0": ac_nameplate_w / PV_ETA_INV_NOM, "eta_inv_nom": PV_ETA_INV_NOM},
        # pvwatts_losses combines its categories multiplicatively; put the whole
        # 14 % in one of them so the total is exactly 14 %.
        losses_parameters={
            "soiling": PV_LOSSES_PERCENT,
            "shading": 0, "snow": 0, "mismatch": 0, "wiring": 0, "connections": 0,
            "lid": 0, "nameplate_rating": 0, "age": 0, "availability": 0,
        },
    )
    chain = ModelChain(
        system,
        location,
        dc_model="pvwatts",
        ac_model="pvwatts",
        losses_model="pvwatts",
        aoi_model="physical",
        spectral_model="no_loss",
        transposition_model="haydavies",
        temperature_model="sapm",
        solar_position_method="nrel_numpy",
    )
    chain.run_model(weather)
    results = chain.results
    import pandas as pd

    out = pd.DataFrame(index=weather.index)
    out["apparent_zenith_deg"] = results.solar_position["apparent_zenith"]
    out["azimuth_deg"] = results.solar_position["azimuth"]
    out["poa_global_w_m2"] = results.total_irrad["poa_global"]
    out["temp_cell_c"] = results.cell_temperature
    out["dc_kw"] = results.dc / 1000.0
    out["ac_kw"] = results.ac / 1000.0
    return out


def write_csv(frame, name):
    frame = frame.copy()
    index = frame.index.tz_convert("UTC")
    frame.insert(0, "time", index.strftime("%Y-%m-%dT%H:%M:%SZ"))
    path = os.path.join(HERE, name)
    frame.to_csv(path, index=False, float_format="%.4f", lineterminator="\n")
    print(f"wrote {os.path.relpath(path, REPO)} ({len(frame)} rows)")


def greensboro_weather():
    import pandas as pd
    import pvlib

    data, meta = pvlib.iotools.read_tmy3(
        os.path.join(WEATHER, "pvlib_723170TYA_greensboro_nc_tmy3.csv"), map_variables=True
    )
    # read_tmy3 labels each hour by its END (local standard time) and does not shift it.
    # The values are averages over the hour, so the sun is evaluated at the midpoint:
    # Verdant's TMY3 parser stamps records at (end - 30 min) in UTC, and so do we.
    data.index = data.index - pd.Timedelta(minutes=30)
    weather = pd.DataFrame(index=data.index)
    for column in ("ghi", "dni", "dhi", "temp_air", "wind_speed"):
        weather[column] = data[column]
    # TMY3 pressure is in mbar; pvlib's solar position expects Pa.
    weather["pressure"] = data["pressure"] * 100.0
    # This file's albedo column is 0.0 throughout (source flag '?' or filled): not a
    # measurement. Verdant treats albedo <= 0 as missing and falls back to 0.25.
    weather["albedo"] = data["albedo"].where(data["albedo"] > 0, PV_ALBEDO)
    return weather, meta


def pv_greensboro():
    weather, meta = greensboro_weather()
    out = pv_chain(weather, meta["latitude"], meta["longitude"], meta["altitude"])
    write_csv(out, "pv_greensboro_tmy3.csv")


def pv_greensboro_ghi_only():
    """Same site with DNI/DHI thrown away and rebuilt by Erbs from GHI."""
    import pandas as pd
    import pvlib

    weather, meta = greensboro_weather()
    location = pvlib.location.Location(meta["latitude"], meta["longitude"], altitude=meta["altitude"])
    solpos = location.get_solarposition(
        weather.index, pressure=weather["pressure"], temperature=weather["temp_air"]
    )
    erbs = pvlib.irradiance.erbs(weather["ghi"], solpos["apparent_zenith"], weather.index)
    weather = weather.copy()
    weather["dni"] = erbs["dni"]
    weather["dhi"] = erbs["dhi"]
    out = pv_chain(weather, meta["latitude"], meta["longitude"], meta["altitude"])
    out.insert(0, "dhi_erbs_w_m2", erbs["dhi"])
    out.insert(0, "dni_erbs_w_m2", erbs["dni"])
    write_csv(out, "pv_greensboro_tmy3_ghi_only.csv")


def pv_italy():
    import pandas as pd
    import pvlib

    data, meta = pvlib.iotools.read_pvgis_tmy(
        os.path.join(WEATHER, "pvlib_pvgis_tmy_45.000N_8.000E_2005_2016.csv"),
        pvgis_format="csv",
        map_variables=True,
    )
    weather = pd.DataFrame(index=data.index)
    for column in ("ghi", "dni", "dhi", "temp_air", "wind_speed", "pressure"):
        weather[column] = data[column]
    inputs = meta["inputs"]
    out = pv_chain(weather, inputs["latitude"], inputs["longitude"], inputs["elevation"])
    write_csv(out, "pv_italy_pvgis_tmy.csv")


def wind_2010():
    import pandas as pd
    from windpowerlib import ModelChain, WindTurbine

    weather = pd.read_csv(
        os.path.join(WEATHER, "windpowerlib_example_weather_2010.csv"),
        index_col=0,
        header=[0, 1],
    )
    weather.index = pd.to_datetime(weather.index, utc=True)
    # As windpowerlib's own example does: heights become numbers.
    weather.columns = [
        weather.axes[1].levels[0][weather.axes[1].codes[0]],
        weather.axes[1].levels[1][weather.axes[1].codes[1]].astype(int),
    ]
    out = pd.DataFrame(index=weather.index)
    for turbine_type, hub_height in TURBINES:
        turbine = WindTurbine(turbine_type=turbine_type, hub_height=hub_height)
        chain = ModelChain(
            turbine,
            wind_speed_model="logarithmic",
            density_model="barometric",
            temperature_model="linear_gradient",
            power_output_model="power_curve",
            density_correction=True,
        ).run_model(weather)
        column = turbine_type.replace("/", "_").replace("-", "").lower()
        out[f"{column}_kw"] = chain.power_output / 1000.0
    write_csv(out, "wind_windpowerlib_2010.csv")


def main():
    ensure_environment()
    import pvlib
    import windpowerlib

    print(f"pvlib {pvlib.__version__}, windpowerlib {windpowerlib.__version__}")
    pv_greensboro()
    pv_greensboro_ghi_only()
    pv_italy()
    wind_2010()


if __name__ == "__main__":
    main()
