"""HTTP only: parse, call one service function, shape the response. No SQL here."""

from __future__ import annotations

from fastapi import APIRouter

from deputy.api import admin, flows

ROUTERS: list[APIRouter] = [admin.router, flows.router]
