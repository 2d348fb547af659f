(function(){
"use strict";
var table=document.getElementById("matrix"),panel=document.getElementById("panel");
var title=document.getElementById("panel-title"),body=document.getElementById("panel-body");
var cells=table?Array.prototype.slice.call(table.querySelectorAll("td.apqn")):[];
var byApqn={},now=[],driftOf={},mdevs={},pinned=null;
cells.forEach(function(td,i){byApqn[td.dataset.apqn]=td;now[i]=[td.className,td.textContent];});
var drifts=Array.prototype.slice.call(document.querySelectorAll("#drift>li"));
drifts.forEach(function(li,n){(li.dataset.apqns||"").split(" ").forEach(function(q){if(q)(driftOf[q]=driftOf[q]||[]).push(n);});});
document.querySelectorAll("#mdevs>li[data-mdev]").forEach(function(li){mdevs[li.dataset.mdev]=li.dataset;});
var defs={};
document.querySelectorAll("#definitions tr[data-uuid]").forEach(function(tr){defs[tr.dataset.uuid]=tr.dataset;});
function owner(word,mdev){if(!mdev)return word;var m=mdevs[mdev];return "mdev "+mdev+" ("+(m?m.label:"#")+")";}
function layers(td){
  var d=td.dataset,absent=td.classList.contains("absent")||d.owner==="none";
  var l=["APQN "+d.apqn+(absent?" (no such queue)":""),"now: "+owner(d.owner,d.mdev)];
  if(d.guest!=null)l.push("guest: "+d.guest+", "+(d.inGuest==="yes"?"sees it":"does not see it"));
  l.push("at boot: "+d.atBoot);
  (d.defs||"").split(" ").forEach(function(u){if(!u)return;var f=defs[u]||{start:"?",nodedev:"?"};
    l.push("defined by: "+u+" ("+f.start+", node device "+f.nodedev+")");});
  l.push("after next boot: "+(d.afterBoot?owner(d.afterBoot,d.afterBootMdev):owner(d.owner,d.mdev)));
  if(td.classList.contains("drift"))l.push("drift: see the list below the grid");
  return l.join("\n");
}
cells.forEach(function(td){td.title=layers(td);});
function el(tag,cls,text){var e=document.createElement(tag);if(cls)e.className=cls;if(text!=null)e.textContent=text;return e;}
function show(td){
  var lines=(td.getAttribute("title")||"").split("\n");
  title.textContent="";
  var sw=el("span","sw "+td.className.replace(/\b(apqn|hl|pinned)\b/g,"")+"",td.textContent);
  title.appendChild(sw);title.appendChild(el("span",null,lines[0]));
  body.textContent="";
  var dl=el("dl");
  lines.slice(1).forEach(function(l){var k=l.indexOf(": ");if(k<0){dl.appendChild(el("dd",null,l));return;}
    dl.appendChild(el("dt",null,l.slice(0,k)));dl.appendChild(el("dd",null,l.slice(k+2)));});
  body.appendChild(dl);
  (driftOf[td.dataset.apqn]||[]).forEach(function(n){
    var li=drifts[n],d=el("div","pd");
    d.appendChild(el("b","bad",li.dataset.kind.replace(/_/g," ")+": "));
    d.appendChild(document.createTextNode(li.querySelector(".message").textContent));
    body.appendChild(d);});
  if(pinned===td)body.appendChild(el("p","hint","Kept: click it again to let go."));
}
function pick(list){
  cells.forEach(function(td){td.classList.remove("hl");});
  list.forEach(function(td){td.classList.add("hl");});
  if(table)table.classList.toggle("focus",list.length>0);
}
if(table){
  table.addEventListener("mouseover",function(e){var td=e.target.closest("td.apqn");if(td&&!pinned)show(td);});
  table.addEventListener("click",function(e){var td=e.target.closest("td.apqn");if(!td)return;
    if(pinned)pinned.classList.remove("pinned");
    pinned=(pinned===td)?null:td;if(pinned)pinned.classList.add("pinned");show(td);});
}
var view="now";
document.querySelectorAll("#mdevs>li[data-mdev]").forEach(function(li){
  li.addEventListener("mouseenter",function(){var u=li.dataset.mdev;
    pick(cells.filter(function(td){var d=td.dataset;return (view==="next"&&d.afterBoot?d.afterBootMdev:d.mdev)===u;}));});
  li.addEventListener("mouseleave",function(){pick([]);});});
drifts.forEach(function(li){
  li.addEventListener("mouseenter",function(){pick((li.dataset.apqns||"").split(" ").map(function(q){return byApqn[q];}).filter(Boolean));});
  li.addEventListener("mouseleave",function(){pick([]);});
  li.addEventListener("click",function(){var q=(li.dataset.apqns||"").split(" ")[0];if(byApqn[q])byApqn[q].scrollIntoView({block:"center",inline:"center"});});});
var GLYPH={host:"H",free:".",unbound:"-",none:""};
function paint(td,owner,mdev){
  var cls="apqn owner-"+owner,text=GLYPH[owner];
  if(owner==="mdev"){var m=mdevs[mdev];cls+=m?" m"+m.index:"";text=m?m.label:"#";}
  if(td.classList.contains("drift"))cls+=" drift";
  td.className=cls;td.textContent=text==null?"":text;
}
function setView(v){
  view=v;
  cells.forEach(function(td,i){
    if(v==="now"){td.className=now[i][0];td.textContent=now[i][1];}
    else if(v==="boot")paint(td,td.dataset.atBoot==="host"?"host":"free");
    else if(td.dataset.afterBoot)paint(td,td.dataset.afterBoot,td.dataset.afterBootMdev);
    else paint(td,td.dataset.owner,td.dataset.mdev);
    if(td===pinned)td.classList.add("pinned");});
}
function fromHash(){var td=byApqn[decodeURIComponent(location.hash.slice(1))];if(!td)return;
  if(pinned)pinned.classList.remove("pinned");pinned=td;td.classList.add("pinned");show(td);
  td.scrollIntoView({block:"nearest",inline:"nearest"});}
window.addEventListener("hashchange",fromHash);fromHash();
document.querySelectorAll("#view input").forEach(function(r){r.addEventListener("change",function(){if(r.checked)setView(r.value);});});
document.body.dataset.js="ready";
})();
